"""Line-aware chunking: line numbers exactly as sed prints them, nothing truncated."""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rag.indexing.chunker import Chunker, split_lines
from tests.conftest import sed_lines

LINE_TEXT = st.text(
    alphabet=st.sampled_from(
        [*"abc xyz.,;!?0123456789", "é", "ß", "北", "京", "😀", "\u0301", "\t", "\u2028", "\r"]
    ),
    max_size=120,
)


def _sed(text: str, tmp: Path) -> list[str]:
    path = tmp / "doc.txt"
    path.write_bytes(text.encode("utf-8"))
    return sed_lines(path)


def _check(text: str, chunks, lines: list[str], max_tokens: int, embedder) -> None:  # type: ignore[no-untyped-def]
    covered = set()
    for c in chunks:
        assert 1 <= c.start_line <= c.end_line <= len(lines)
        expected = "\n".join(lines[c.start_line - 1 : c.end_line])
        if c.start_line == c.end_line and c.text != lines[c.start_line - 1]:
            # a piece of a line too long for one chunk: a slice of that line
            assert c.text in lines[c.start_line - 1]
            assert text[c.start_char : c.end_char] == c.text
        else:
            assert c.text == expected
            raw = text[c.start_char : c.end_char].split("\n")
            # every line but the last still carries its "\r\n" line ending's "\r"
            unended = [r[:-1] if r.endswith("\r") else r for r in raw[:-1]] + raw[-1:]
            assert unended == expected.split("\n")
        assert lines[c.start_line - 1].strip() and lines[c.end_line - 1].strip()
        covered.update(range(c.start_line, c.end_line + 1))
    for number, line in enumerate(lines, start=1):
        if line.strip():
            assert number in covered, f"line {number} is in no chunk"
    counts = embedder.counter.count([c.text for c in chunks]) if chunks else []
    assert all(n <= max_tokens for n in counts)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(LINE_TEXT, max_size=30),
    crlf=st.booleans(),
    final_newline=st.booleans(),
    max_tokens=st.integers(min_value=4, max_value=60),
    overlap=st.integers(min_value=0, max_value=2),
)
def test_chunks_are_exactly_the_files_lines(
    lines, crlf, final_newline, max_tokens, overlap, embedder, tmp_path
):  # type: ignore[no-untyped-def]
    eol = "\r\n" if crlf else "\n"
    text = eol.join(lines) + (eol if final_newline and lines else "")
    chunker = Chunker(embedder.counter, max_tokens, overlap)
    chunks = chunker.chunk("doc.txt", text)
    _check(text, chunks, _sed(text, tmp_path), max_tokens, embedder)


def test_line_numbers_with_crlf_blank_lines_and_no_final_newline(embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    text = "first line\r\n\r\n\r\nfourth – ünïcödé 😀 line\r\nfifth\u2028still fifth\r\n\r\nseventh"
    chunker = Chunker(embedder.counter, 8)
    chunks = chunker.chunk("doc.txt", text)
    lines = _sed(text, tmp_path)
    assert len(lines) == 7 and lines[4] == "fifth\u2028still fifth"
    _check(text, chunks, lines, 8, embedder)
    starts = {c.start_line for c in chunks}
    assert {1, 4, 7} <= starts | {c.end_line for c in chunks}
    assert [line.number for line in split_lines(text)] == list(range(1, 8))


def test_a_line_longer_than_a_chunk_is_split_and_keeps_its_number(embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    long_line = " ".join(f"word{i}" for i in range(600))
    text = f"intro\n{long_line}\noutro\n"
    chunks = Chunker(embedder.counter, 50).chunk("doc.txt", text)
    pieces = [c for c in chunks if c.start_line == 2]
    assert len(pieces) > 5
    assert all(c.end_line == 2 for c in pieces)
    assert "".join(c.text for c in pieces).replace(" ", "") == long_line.replace(" ", "")
    _check(text, chunks, _sed(text, tmp_path), 50, embedder)


def test_no_chunk_is_truncated_by_the_model(embedder, torch_embedder, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every chunk fits the model's sequence, special tokens included: no text dropped
    (counted by the default backend's tokenizer, checked with the model's own)."""
    random.seed(7)
    words = ["sanctions", "Pyongyang", "artillery", "summit", "2024", "Vladivostok", "a" * 40]
    text = "\n".join(
        " ".join(random.choice(words) for _ in range(random.randint(1, 900))) for _ in range(12)
    )
    chunker = Chunker(embedder.counter, embedder.max_chunk_tokens)
    chunks = chunker.chunk("doc.txt", text)
    tokenizer = torch_embedder._model.tokenizer
    assert embedder.max_seq_length == torch_embedder.max_seq_length
    for c in chunks:
        assert len(tokenizer(c.text)["input_ids"]) <= embedder.max_seq_length


def test_five_megabyte_single_line(embedder) -> None:  # type: ignore[no-untyped-def]
    random.seed(3)
    vocab = ["alpha", "beta", "Pyongyang", "summit", "2024", "x" * 30, "ünïcode"]
    line = " ".join(random.choice(vocab) for _ in range(700_000))[: 5 * 2**20]
    chunks = Chunker(embedder.counter, 128).chunk("big.txt", line)
    assert len(chunks) > 1000
    assert all(c.start_line == c.end_line == 1 for c in chunks)
    assert all(line[c.start_char : c.end_char] == c.text for c in chunks)
    assert max(embedder.counter.count([c.text for c in chunks])) <= 128
    assert sum(len(c.text.replace(" ", "")) for c in chunks) == len(line.replace(" ", ""))


def test_a_giant_word_is_capped_by_characters(embedder) -> None:  # type: ignore[no-untyped-def]
    blob = "A" * 200_000  # one "word": the tokenizer sees a single [UNK]
    chunks = Chunker(embedder.counter, 64).chunk("blob.txt", blob)
    assert all(len(c.text) <= 64 * 12 for c in chunks)
    assert "".join(c.text for c in chunks) == blob


def test_ids_are_stable_and_unique(embedder) -> None:  # type: ignore[no-untyped-def]
    text = "Leave a Reply\n\nsome text here\n\nLeave a Reply\n"
    chunker = Chunker(embedder.counter, 4)
    first = chunker.chunk("a.txt", text)
    again = chunker.chunk("a.txt", "new first line\n" + text)
    assert len({c.id for c in first}) == len(first)
    assert {c.id for c in first} <= {c.id for c in again}  # content-addressed: shifts keep ids
    assert {c.id for c in chunker.chunk("b.txt", text)}.isdisjoint({c.id for c in first})


HEADING_OR_TEXT = st.one_of(
    LINE_TEXT,
    st.builds(lambda n, t: "#" * n + " " + t, st.integers(1, 4), LINE_TEXT),
    st.sampled_from(["===", "---", "```", "Title", "=====", "~~~~~"]),
)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(HEADING_OR_TEXT, min_size=1, max_size=30),
    suffix=st.sampled_from([".md", ".rst", ".pdf"]),
    breaks=st.sets(st.integers(min_value=2, max_value=30)),
    max_tokens=st.integers(min_value=4, max_value=60),
    overlap=st.integers(min_value=0, max_value=2),
)
def test_headings_and_pages_keep_the_line_contract(
    lines, suffix, breaks, max_tokens, overlap, embedder, tmp_path
):  # type: ignore[no-untyped-def]
    """Heading context stays within the token budget; no chunk spans a page start."""
    text = "\n".join(lines) + "\n"
    starts = sorted({1} | {b for b in breaks if b <= len(lines)})
    chunks = Chunker(embedder.counter, max_tokens, overlap).chunk(f"doc{suffix}", text, starts)
    _check(text, chunks, _sed(text, tmp_path), max_tokens, embedder)
    counts = embedder.counter.count([c.embed_text for c in chunks]) if chunks else []
    assert all(n <= max_tokens for n in counts)
    for c in chunks:
        assert c.page is not None and c.page_first_line == starts[c.page - 1] <= c.start_line
        assert c.page == len(starts) or c.end_line < starts[c.page]
