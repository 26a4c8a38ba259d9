"""Benchmarks: Escalator next to a bare-Temporal baseline (docs/benchmarks.md)."""
