"""Evaluation suite for ``rag``: metric definitions (see ``rag.evaluation.metrics``)."""
