"""Adapters that let other frameworks use rag (llama-index); each is an optional extra and
is imported only by the code that uses it, never by rag's own start-up."""
