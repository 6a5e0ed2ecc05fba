"""rag: local question answering over your own files, citing file and line."""

__version__ = "0.1.0"
