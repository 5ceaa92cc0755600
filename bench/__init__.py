"""Benchmarks for recordkit; each module is a script that prints figures (see bench/README.md)."""
