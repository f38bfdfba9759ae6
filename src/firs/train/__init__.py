"""Learning the garment embedding: pairs in, a model directory out (`firs train`)."""
