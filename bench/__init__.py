"""Benchmark suite for rag (`make bench`); see bench/README.md."""
