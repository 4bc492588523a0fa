"""Time Machine: the product (history, vault, search, export), free of gRPC."""
