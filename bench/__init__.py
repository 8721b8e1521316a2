"""Benchmarks: ``python -m bench`` (see the Benchmarks section of README.md)."""
