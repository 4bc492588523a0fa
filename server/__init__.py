"""gRPC transport for Time Machine: bootstrap, servicer, interceptors."""
