"""Benchmarks of Tidings against its peers: ``python -m bench`` (see bench/README.md)."""
