"""The gRPC server: the Open Inference Protocol v2, TF Serving's gRPC API and grpc.health.v1,
beside HTTP in the same process."""
