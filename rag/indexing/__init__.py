"""The write side: files -> formats -> lines -> chunks -> embeddings in the index, kept true to the
files (recovery after a crash, generations, watching, status).  Never imports rag.answering."""
