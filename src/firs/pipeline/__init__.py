"""The offline pipeline: read -> fetch -> embed -> write shards -> build index."""
