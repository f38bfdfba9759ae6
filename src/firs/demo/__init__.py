"""The built-in demo: a drawn garment catalogue, its index, an example query."""
