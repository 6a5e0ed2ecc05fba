"""Tests of rag.feedback: marks on answers, their store, export and the gate that guards them."""
