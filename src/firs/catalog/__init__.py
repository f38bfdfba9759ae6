"""Products in: catalogue readers, image fetching, the product store."""
