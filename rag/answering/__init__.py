"""The read side: retrieval, the sentences of retrieved passages, answers with verified
citations, and conversation.  Never imports rag.indexing."""
