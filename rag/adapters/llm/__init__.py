"""Language model backends behind one interface (``LLM``)."""

from rag.adapters.llm.base import LLM

__all__ = ["LLM"]
