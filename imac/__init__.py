"""IMAC (Implicit Motion-Audio Coupling): the reference co-speech gesture video model and its data."""

__version__ = "0.1.0"
