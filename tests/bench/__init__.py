"""Tests of bench/: the benchmark suite end to end."""
