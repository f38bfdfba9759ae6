"""Vectors to neighbours: whitening, the ANN index, the on-disk index directory."""
