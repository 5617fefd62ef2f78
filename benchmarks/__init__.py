"""Throughput, latency, start-up time and memory of the service against reference servers.

Run it with `scripts/benchmark.sh [--quick]`, and the soak (one server under steady load,
watching errors and memory) with `scripts/soak.sh`; `benchmarks/README.md` explains both.
"""
