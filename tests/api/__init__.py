"""Tests of rag.api: the HTTP server, its parts, its jobs, and several workers on one index."""
