"""Tests of the benchmark harness (never of speed)."""
