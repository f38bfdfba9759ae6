"""FIRS: street-to-shop fashion image retrieval."""

__version__ = "0.1.0"
