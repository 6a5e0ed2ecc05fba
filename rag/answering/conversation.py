"""Conversations: follow-up questions become standalone queries before retrieval.

"When did he last visit?" means nothing to a retriever.  Before a follow-up is answered it is
rewritten from the conversation: by the model when there is one (``prompts/rewrite_chat.txt``
for chat models, ``prompts/rewrite_completion.txt`` for small base models), and otherwise, or
when the model's rewrite is unusable, by carrying the earlier turns' key terms (names, then
content words) into the query: "When did he last visit? (Putin, North Korea)".
"""

from __future__ import annotations

import logging
import posixpath
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rag.adapters.llm.base import LLM
from rag.adapters.llm.select import Choice, make_backend
from rag.adapters.manifest import Manifest
from rag.answering.answer import AnswerService
from rag.config import Settings
from rag.errors import IndexStateError, InputError
from rag.models import Answer
from rag.prompts import load_prompt
from rag.text import STOPWORDS, content_words, normalize_word, sentences

log = logging.getLogger(__name__)

HISTORY_TURNS = 3  # earlier turns a rewrite looks at
MAX_CARRIED_TERMS = 3
REWRITE_MAX_TOKENS = 64
ANSWER_CHARS_SHOWN = 300  # of each earlier answer, in the rewrite prompt

# Words that point back into the conversation.
ANAPHORA = frozenset(
    "he him his she her hers it its they them their theirs there that this those these then "
    "former latter one ones".split()
)
FOLLOW_UP_OPENINGS = ("and ", "but ", "so ", "also ", "what about", "how about", "why not")
_TOKEN = re.compile(r"[\w][\w'’.-]*\w|\w", re.UNICODE)
_MARKERS = re.compile(r"\s*\[\d{1,3}\]")
_LABEL = re.compile(
    r"^\s*(?:standalone|rewritten|reformulated)?\s*(?:question|query)\s*:\s*", re.IGNORECASE
)

Method = Literal["unchanged", "model", "key terms"]


@dataclass(frozen=True)
class Turn:
    question: str  # as asked
    query: str  # the standalone query that was answered
    answer: str  # the answer without citation markers; "" when rag abstained


def history_turn(question: str, answer: str, query: str | None = None) -> Turn:
    """A turn as a client reports it (HTTP ``history``): citation markers dropped."""
    question = question.strip()
    return Turn(question, (query or question).strip(), _MARKERS.sub("", answer).strip())


@dataclass(frozen=True)
class Rewrite:
    question: str
    query: str
    method: Method
    note: str = ""  # e.g. why the model's rewrite was not used

    @property
    def changed(self) -> bool:
        return self.query != self.question


# -- key terms ----------------------------------------------------------------
def is_follow_up(question: str) -> bool:
    """Does ``question`` lean on the conversation (a pronoun, "and ...", or no subject)?"""
    lowered = question.strip().lower()
    tokens = [t.lower() for t in _TOKEN.findall(question)]
    if any(t in ANAPHORA for t in tokens) or lowered.startswith(FOLLOW_UP_OPENINGS):
        return True
    words = content_words(question)
    return not words or (len(words) == 1 and not names(question))


def names(text: str) -> list[str]:
    """Capitalised phrases and numbers of ``text`` ("Kim Jong Un", "North Korea", "2019")."""
    found: list[str] = []
    for sentence in sentences(text):
        phrase: list[str] = []
        end = 0
        for match in _TOKEN.finditer(sentence.text):
            token = re.sub(r"['’]s$", "", match.group())
            adjacent = not sentence.text[end : match.start()].strip()
            end = match.end()
            is_name = (token[:1].isupper() or any(c.isdigit() for c in token)) and (
                normalize_word(token) not in STOPWORDS and token.lower() not in STOPWORDS
            )
            if is_name and (adjacent or not phrase):
                phrase.append(token)
                continue
            if phrase:
                found.append(" ".join(phrase))
            phrase = [token] if is_name else []
        if phrase:
            found.append(" ".join(phrase))
    unique: list[str] = []
    for name in found:
        if name not in unique:
            unique.append(name)
    return unique


def _surface_content_words(text: str) -> list[str]:
    return [t for t in _TOKEN.findall(text) if content_words(t)]


def _new_terms(
    text: str, covered: set[str], limit: int, pick: Callable[[str], list[str]]
) -> list[str]:
    """Up to ``limit`` terms picked from ``text`` that add words ``covered`` lacks (updated)."""
    terms: list[str] = []
    for term in pick(text):
        if len(terms) >= limit:
            break
        words = content_words(term)
        if words and not words <= covered:
            terms.append(term)
            covered |= words
    return terms


def carry_key_terms(question: str, turns: list[Turn]) -> str:
    """``question`` with the latest turn's names appended (its question's first, then its
    answer's; content words if it names nothing): "What did he say? (Yuri Ushakov, Putin)"."""
    for turn in reversed(turns[-HISTORY_TURNS:]):
        covered = content_words(question)
        terms = _new_terms(turn.query, covered, MAX_CARRIED_TERMS, names)
        if len(terms) < 2:
            terms += _new_terms(turn.answer, covered, MAX_CARRIED_TERMS - len(terms), names)
        if not terms:
            terms = _new_terms(turn.query, covered, MAX_CARRIED_TERMS + 1, _surface_content_words)
        if terms:
            return f"{question} ({', '.join(terms)})"
    return question


# -- rewriting by the model -----------------------------------------------------
def format_history(turns: list[Turn]) -> str:
    lines = []
    for turn in turns[-HISTORY_TURNS:]:
        answer = turn.answer or "(the documents did not say)"
        if len(answer) > ANSWER_CHARS_SHOWN:
            answer = answer[:ANSWER_CHARS_SHOWN].rsplit(" ", 1)[0] + " ..."
        lines += [f"User: {' '.join(turn.query.split())}", f"Assistant: {' '.join(answer.split())}"]
    return "\n".join(lines)


def clean_model_rewrite(raw: str) -> str:
    """The first line of the model's output, without labels, quotes or markup."""
    line = next((ln for ln in raw.strip().splitlines() if ln.strip()), "")
    line = _LABEL.sub("", line).strip().strip("`*\"'“”‘’").strip()
    return " ".join(line.split())


def rejection(rewrite: str, question: str, turns: list[Turn]) -> str | None:
    """Why a model's rewrite is unusable (empty, rambling, unrelated), or None if it is fine."""
    if not rewrite:
        return "it was empty"
    inputs = len(question) + len(turns[-1].query)
    if len(rewrite) > 3 * inputs:
        return f"it was {len(rewrite)} characters long"
    conversation = content_words(question)
    for turn in turns[-HISTORY_TURNS:]:
        conversation |= content_words(turn.query) | content_words(turn.answer)
    if not content_words(rewrite) & conversation:
        return "it shares no words with the conversation"
    return None


def model_rewrite(question: str, turns: list[Turn], llm: LLM, prompts_dir: Path) -> str:
    name = "rewrite_completion" if llm.evidence == "sentences" else "rewrite_chat"
    prompt = load_prompt(name, prompts_dir).render(history=format_history(turns), question=question)
    text = ""
    for piece in llm.stream(prompt, REWRITE_MAX_TOKENS):
        text += piece
        if "\n" in text.strip():
            break  # one line is all we want
    return clean_model_rewrite(text)


@dataclass
class Conversation:
    """The turns so far, and the rewriting of a new question against them."""

    turns: list[Turn] = field(default_factory=list)

    def add(self, turn: Turn) -> None:
        self.turns.append(turn)

    def reset(self) -> None:
        self.turns.clear()

    def rewrite(self, question: str, llm: LLM | None, prompts_dir: Path) -> Rewrite:
        question = question.strip()
        if not self.turns:
            return Rewrite(question, question, "unchanged")
        # A chat model judges best whether a question needs the conversation; a small base
        # model only gets the questions that plainly do.
        if llm is not None and (llm.evidence == "passages" or is_follow_up(question)):
            rewritten = model_rewrite(question, self.turns, llm, prompts_dir)
            why_not = rejection(rewritten, question, self.turns)
            if why_not is None:
                method: Method = "model" if rewritten != question else "unchanged"
                return Rewrite(question, rewritten, method)
            log.info("model rewrite %r rejected: %s", rewritten, why_not)
            note = f"the model's rewrite was not used: {why_not}"
            return Rewrite(question, carry_key_terms(question, self.turns), "key terms", note)
        if not is_follow_up(question):
            return Rewrite(question, question, "unchanged")
        query = carry_key_terms(question, self.turns)
        return Rewrite(question, query, "key terms" if query != question else "unchanged")


# -- the chat service -----------------------------------------------------------
@dataclass(frozen=True)
class ChatAnswer:
    question: str  # as asked
    rewrite: Rewrite
    answer: Answer


class ChatService:
    """A conversation over an AnswerService: rewrite follow-ups, answer, remember, switch LLM."""

    def __init__(
        self,
        service: AnswerService,
        *,
        top_k: int | None = None,
        paths: Sequence[str] | None = None,
    ) -> None:
        self._base = service
        self._services: dict[int, AnswerService] = {id(service.default): service}
        self._auto: Choice | None = None
        self.current = service
        self.top_k = top_k
        self.paths = paths
        self.conversation = Conversation()
        self.last: ChatAnswer | None = None

    @property
    def choice(self) -> Choice:
        return self.current.default

    def use_backend(self, name: str) -> Choice:
        """Switch to backend ``name``; raises (and keeps the current one) if it cannot serve."""
        settings = self._base.settings
        if name == "auto" and settings.llm_backend != "auto":
            if self._auto is None:
                self._auto = make_backend(settings, "auto")
            choice = self._auto
        else:
            choice = self._base.backend(name)
        probe = getattr(choice.llm, "probe", None)
        if callable(probe):
            probe()  # e.g. Ollama: is it up, and does it have the model?
        if id(choice) not in self._services:
            base = self._base
            self._services[id(choice)] = AnswerService(
                base.settings, base.embedder, base.retriever, choice, base.prompts_dir
            )
        self.current = self._services[id(choice)]
        return choice

    def ask(
        self,
        question: str,
        on_token: Callable[[str], None] | None = None,
        on_rewrite: Callable[[Rewrite], None] | None = None,
    ) -> ChatAnswer:
        """Answer ``question`` in the light of the conversation so far."""
        question = question.strip()
        if question and self.indexed() == 0:
            raise IndexStateError(
                f"the index at {self.current.retriever.store.where} is empty",
                "add documents with `rag ingest PATH`",
            )
        rewrite = self.conversation.rewrite(question, self.choice.llm, self.current.prompts_dir)
        if on_rewrite is not None:
            on_rewrite(rewrite)
        answer = self.current.ask(
            rewrite.query, top_k=self.top_k, on_token=on_token, paths=self.paths
        )
        said = "" if answer.abstained else answer.answer
        self.conversation.add(history_turn(question, said, rewrite.query))
        self.last = ChatAnswer(question, rewrite, answer)
        return self.last

    def indexed(self) -> int:
        """How many chunks the index holds."""
        return self.current.retriever.store.count()

    def reset(self) -> None:
        self.conversation.reset()
        self.last = None


def resolve_paths(values: Iterable[str], settings: Settings) -> list[str] | None:
    """Path prefixes (as citations name files) for the indexed files under the given places.

    A value is a folder or file on disk (absolute, or relative to the working folder), or a
    path relative to the corpus folder as citations show it ("news/2024").  A whole indexed
    folder becomes one prefix ("news/2024/"), anything else its files; None: everything.
    """
    values = list(values)
    files = Manifest.load(settings.index_dir).files
    prefixes: set[str] = set()
    chosen: set[str] = set()
    for value in values:
        rel = value.strip().replace("\\", "/").strip("/")
        given = Path(value).expanduser()
        on_disk = given.resolve() if given.exists() else None
        matched = {
            path
            for path, entry in files.items()
            if (on_disk is not None and Path(entry.abs_path).resolve().is_relative_to(on_disk))
            or rel in ("", ".")
            or path == rel
            or path.startswith(rel + "/")
        }
        chosen |= matched
        folder = posixpath.commonpath([posixpath.dirname(p) for p in matched]) if matched else ""
        if matched and folder and matched == {p for p in files if p.startswith(folder + "/")}:
            prefixes.add(folder + "/")
        else:
            prefixes |= matched
    if not chosen:
        raise InputError(
            f"no indexed files under {', '.join(values)}",
            "name a folder that `rag ingest` has indexed, or ingest it first",
        )
    if chosen == set(files):
        return None
    return sorted(prefixes)
