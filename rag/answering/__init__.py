"""Answering: from a question to retrieved passages, a chosen answer with cited lines, or an
abstention (the reader that scores candidates and answerability lives in ``reader``)."""
