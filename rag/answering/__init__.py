"""The read side: retrieval, the sentences of retrieved passages, the reader that scores them
(``reader``: which sentence and line answer, and whether anything does), answers with verified
citations, and conversation.  Never imports rag.indexing."""
