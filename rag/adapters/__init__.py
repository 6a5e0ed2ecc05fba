"""Adapters around external engines: embedding model, Chroma, LLM backends."""
