"""Pixels to facts: safe decoding and the embedder."""
