"""Tests of rag.integrations: rag used from other frameworks (llama-index)."""
