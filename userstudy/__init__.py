"""User studies of generated videos: ranking collection and its statistics. Standalone."""
