"""Tests of rag.answering and rag.spans: retrieval, sentences and answer types, answers and
citations."""
