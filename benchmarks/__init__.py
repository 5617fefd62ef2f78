"""Throughput, latency, start-up time and memory of the service against reference servers.

Run it with `scripts/benchmark.sh [--quick]`; `benchmarks/README.md` explains the figures.
"""
