"""Tests of rag.indexing: formats, chunking, ingest, the index kept true (crashes,
generations), watch and status."""
