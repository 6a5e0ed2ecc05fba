"""Adapters around external engines and files on disk: embedding model, Chroma, the keyword
index, LLM backends, the writer lock, the manifest and the stores of each generation."""
