"""The gRPC messages: the .proto files and the modules generated from them (scripts/protos.sh)."""
