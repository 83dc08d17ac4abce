"""Benchmarks: each script prints its figures (see docs/development.md)."""
