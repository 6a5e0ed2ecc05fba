"""The reader: a small model, trained by us on SQuAD training articles, that scores how well a
retrieved sentence (and each of its lines) answers a question, and how likely the retrieved
text answers it at all (the answer's confidence).  Inference is numpy only; ``rag train``
(``make train``) reproduces the shipped weights in this folder."""
