"""Tests of rag.adapters: the LLM backends at their wire."""
