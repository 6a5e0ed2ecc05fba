"""The OpenAI chat-completions protocol over rag's ask path.

Clients built for the OpenAI API (the ``openai`` SDK, Open WebUI, Continue, LangChain) talk
to rag by its base URL.  A request's last user message is the question; the messages before
it are the conversation, and a follow-up is rewritten into a standalone question as in
`rag chat` (rag.answering.conversation).  The answer text keeps its ``[n]`` markers and ends
with the sources (``Sources: [1] file:Lx-Ly``); the whole answer object (structured
citations, ``abstained``, ``confidence``...) rides along in the extra field ``rag`` of the
response, and of the final chunk of a stream.

Parameters rag cannot honour (tools, several choices, log-probabilities, JSON modes...) are
refused with a 400 naming them; harmless sampling and bookkeeping parameters (temperature,
max_tokens, user, stream_options...) are accepted and do not change the answer.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from rag.answering.answer import ABSTAIN_TEXT
from rag.answering.conversation import Turn
from rag.api.asking import AskRun, Event, run_events
from rag.api.errors import openai_error_data
from rag.api.openai_catalog import MODELS
from rag.api.openai_schemas import (
    AssistantMessage,
    ChatCompletionRequest,
    OtherMessage,
    UserMessage,
)
from rag.api.schemas import AskRequest, HistoryTurn
from rag.config import Backend
from rag.errors import InputError, UnknownModelError
from rag.models import Answer

SOURCES_HEADING = "Sources:"
CLOSEST_HEADING = "Closest passages:"
_TRAILER = re.compile(rf"\n\s*(?:{SOURCES_HEADING}|{CLOSEST_HEADING}).*\Z", re.S)
_MARKERS = re.compile(r"\s*\[\d{1,3}\]")
ACCEPTED = (
    "model, messages, stream, stream_options, temperature, top_p, max_tokens, "
    "max_completion_tokens, n (1), stop, seed, user, presence_penalty, frequency_penalty, "
    "logprobs (false), response_format (text), metadata, store; rag's own: top_k, paths"
)


def refused(body: ChatCompletionRequest) -> list[str]:
    """The parameters of ``body`` rag cannot honour, each with why."""
    problems = []
    if body.n not in (None, 1):
        problems.append(f"n={body.n} (rag gives one answer per question)")
    if body.logprobs:
        problems.append("logprobs (rag does not report token probabilities)")
    if body.top_logprobs:
        problems.append("top_logprobs (rag does not report token probabilities)")
    if body.tools:
        problems.append("tools (rag does not call tools)")
    if body.functions:
        problems.append("functions (rag does not call functions)")
    if body.tool_choice not in (None, "none", "auto"):
        problems.append("tool_choice (rag does not call tools)")
    if body.function_call not in (None, "none", "auto"):
        problems.append("function_call (rag does not call functions)")
    if body.response_format and body.response_format.get("type", "text") != "text":
        problems.append(f"response_format {body.response_format.get('type')!r} (text only)")
    if body.logit_bias:
        problems.append("logit_bias (the answer is not sampled token by token here)")
    problems += [f"{name} (not supported)" for name in sorted(body.model_extra or {})]
    return problems


def backend_of(model: str) -> Backend | None:
    if model not in MODELS:
        raise UnknownModelError(
            f"there is no model {model!r}",
            f"use one of: {', '.join(MODELS)} (GET /v1/models lists the available ones)",
        )
    return MODELS[model]


# -- messages -> conversation + question -----------------------------------------------
def text_of(message: OtherMessage | UserMessage | AssistantMessage) -> str:
    if message.content is None:
        return ""
    if isinstance(message.content, str):
        return message.content
    return "\n".join(part.text for part in message.content)


def said_of(answer_text: str) -> str:
    """What an earlier answer said: without markers, sources or an abstention."""
    text = _TRAILER.sub("", answer_text)
    if text.strip().startswith(ABSTAIN_TEXT.split(":")[0]):
        return ""
    return _MARKERS.sub("", text).strip()


def conversation(
    messages: list[OtherMessage | UserMessage | AssistantMessage],
) -> tuple[list[Turn], str]:
    """The earlier turns and the question: the last user message (anything after it is
    read past).  System and developer messages are read past too (rag answers from its own
    prompts); a user message is paired with the assistant message after it, if any.
    """
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last is None:
        raise InputError(
            "no user message: rag answers the last user message",
            "send {'role': 'user', 'content': QUESTION} in messages",
        )
    question = text_of(messages[last]).strip()
    turns: list[Turn] = []
    asked: str | None = None
    for message in messages[:last]:
        if message.role == "user":
            if asked is not None:
                turns.append(Turn(asked, asked, ""))
            asked = text_of(message).strip()
        elif message.role == "assistant" and asked is not None:
            turns.append(Turn(asked, asked, said_of(text_of(message))))
            asked = None
    if asked is not None:
        turns.append(Turn(asked, asked, ""))
    return turns, question


def ask_request(
    body: ChatCompletionRequest, turns: list[Turn], question: str, backend: Backend | None
) -> AskRequest:
    """The /v1/ask request: the question with the conversation as its ``history`` (rewritten
    by the ask path as a follow-up; the messages' schema has already bounded what it holds)."""
    history = [
        HistoryTurn.model_construct(question=t.question, answer=t.answer, query=None) for t in turns
    ]
    return AskRequest.model_construct(
        question=question,
        top_k=body.top_k,
        paths=body.paths,
        backend=backend,
        stream=None,
        history=history or None,
    )


# -- answer -> OpenAI objects --------------------------------------------------------------
def trailer(answer: Answer) -> str:
    """``Sources: [1] a.txt:L3-L4; [2] ...``, or for an abstention the closest passages."""
    if answer.citations:
        listed = "; ".join(f"[{i}] {c.anchor}" for i, c in enumerate(answer.citations, 1))
        return f"\n\n{SOURCES_HEADING} {listed}"
    if answer.sources:
        return f"\n\n{CLOSEST_HEADING} {'; '.join(s.anchor for s in answer.sources)}"
    return ""


def content(answer: Answer) -> str:
    return answer.answer + trailer(answer)


def extra(answer: Answer) -> dict[str, Any]:
    """The ``rag`` field: the whole /v1/ask answer object (``query``: the rewritten
    follow-up, if it was one)."""
    return answer.model_dump(mode="json")


class Completion:
    """The ids and stamps one chat completion shares between its chunks."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model = model

    def response(self, answer: Answer) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": answer.index_version,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content(answer), "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": None,
            "rag": extra(answer),
        }

    def chunk(
        self, delta: dict[str, Any], finish: str | None = None, **fields: Any
    ) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **fields,
        }


def data(payload: Any) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


DONE = b"data: [DONE]\n\n"


async def chunks(
    completion: Completion,
    run: AskRun,
    first: Event,
    deadline: float,
    timeout: float,
) -> AsyncIterator[bytes]:
    """``chat.completion.chunk`` events: the role, the text as the answer service emits it
    (tokens; or the whole answer when none came), the sources, a final chunk with
    ``finish_reason: stop`` and the ``rag`` field, then ``[DONE]``.  A failure after the
    first byte is one ``data: {"error": ...}`` event (the SDK raises it).  Starlette cancels
    this generator when the client leaves; ``finally`` then stops the model.
    """
    streamed = False
    try:
        yield data(completion.chunk({"role": "assistant", "content": ""}))
        async with contextlib.aclosing(run_events(run, first, deadline, timeout)) as events:
            async for event in events:
                if event is None:
                    yield b": ping\n\n"
                    continue
                kind, value = event
                if kind == "token":
                    streamed = True
                    yield data(completion.chunk({"content": value}))
                elif kind == "answer":
                    answer: Answer = value
                    text = trailer(answer) if streamed else content(answer)
                    yield data(completion.chunk({"content": text}))
                    yield data(completion.chunk({}, "stop", rag=extra(answer)))
                    yield DONE
                else:
                    yield data(openai_error_data(value))
    finally:
        run.stop("disconnect")
        run.close()
