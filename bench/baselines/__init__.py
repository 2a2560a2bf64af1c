"""The S2G and MYA reimplementations as models (``bench.methods`` holds their thin adapters)."""
