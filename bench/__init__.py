"""The benchmark: methods side by side per speaker identity under one metrics protocol."""
