"""Tests of rag.evaluation and the golden questions."""
