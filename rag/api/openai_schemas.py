"""Request and response bodies of the OpenAI-compatible routes, with their /docs examples.

The schema states the neutral value of each parameter rag cannot honour (``n`` 1, no
``tools``...), so a client generated from it sends what rag answers; other values are
refused with a 400 naming them (rag.api.openai_compat.refused).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from rag.answering.answer import MAX_QUESTION_CHARS
from rag.api.schemas import NOT_BLANK, Prefix, TopK

Text = Annotated[str, Field(max_length=100_000)]
Question = Annotated[str, Field(min_length=1, max_length=MAX_QUESTION_CHARS, pattern=NOT_BLANK)]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: Text


class QuestionPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: Question


class OtherMessage(BaseModel):
    """A system or developer message: read past (rag answers from its own prompts)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer"]
    content: Text | list[TextPart]
    name: str | None = None


class UserMessage(BaseModel):
    """A question; the last one is answered, the earlier ones are the conversation."""

    model_config = ConfigDict(extra="allow")

    role: Literal["user"]
    content: Question | Annotated[list[QuestionPart], Field(min_length=1, max_length=1)]
    name: str | None = None


class AssistantMessage(BaseModel):
    """An earlier answer (its citation markers and sources are read past)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["assistant"]
    content: Text | list[TextPart] | None = None
    name: str | None = None


USER_ROLE: dict[str, Any] = {"required": ["role"], "properties": {"role": {"const": "user"}}}
Message = Annotated[OtherMessage | UserMessage | AssistantMessage, Field(discriminator="role")]
Messages = Annotated[
    list[Message],
    Field(
        min_length=1,
        max_length=200,
        json_schema_extra={"contains": USER_ROLE},
    ),
]


MODEL_HELP = "rag (the server's backend), rag-extractive, rag-llamacpp or rag-ollama"


def neutral(schema: dict[str, Any], description: str) -> Any:
    """A parameter accepted only with its neutral value: the schema says which (so generated
    clients send it right); any other value is refused with a 400 naming it."""
    return Field(None, description=description, json_schema_extra=schema)


class ChatCompletionRequest(BaseModel):
    """``POST /v1/chat/completions``.  Parameters rag cannot honour are refused with a 400
    naming them (not a 422: the body is valid JSON of the OpenAI protocol)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "additionalProperties": False,
            "examples": [
                {
                    "model": "rag",
                    "messages": [
                        {
                            "role": "user",
                            "content": "When did Putin last visit North Korea before this trip?",
                        }
                    ],
                },
                {
                    "model": "rag-extractive",
                    "stream": True,
                    "messages": [
                        {"role": "user", "content": "How did Kim Jong Un travel to Russia?"},
                        {"role": "assistant", "content": "By armoured train. [1]"},
                        {"role": "user", "content": "What did he visit there?"},
                    ],
                },
            ],
        },
    )

    model: Annotated[str, Field(min_length=1, max_length=200, description=MODEL_HELP)]
    messages: Messages
    stream: StrictBool | None = None
    stream_options: dict[str, Any] | None = None
    # accepted and ignored: the answer does not depend on them
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    metadata: dict[str, Any] | None = None
    store: bool | None = None
    # accepted only with their neutral value
    n: int | None = neutral({"minimum": 1, "maximum": 1}, "One answer per question.")
    logprobs: bool | None = neutral({"enum": [False, None]}, "Not reported.")
    top_logprobs: int | None = neutral({"minimum": 0, "maximum": 0}, "Not reported.")
    response_format: dict[str, Any] | None = neutral(
        {"properties": {"type": {"enum": ["text"]}}}, "Text only."
    )
    tools: list[Any] | None = neutral({"maxItems": 0}, "rag calls no tools.")
    tool_choice: Any = neutral({"enum": ["none", "auto", None]}, "rag calls no tools.")
    functions: list[Any] | None = neutral({"maxItems": 0}, "rag calls no functions.")
    function_call: Any = neutral({"enum": ["none", "auto", None]}, "rag calls no functions.")
    logit_bias: dict[str, Any] | None = neutral({"maxProperties": 0}, "Not sampled here.")
    # rag's own (send them with the SDK's extra_body)
    top_k: TopK | None = None
    paths: Annotated[list[Prefix] | None, Field(max_length=50)] = None


# -- responses (documentation) ------------------------------------------------------------
class ChatChoice(BaseModel):
    index: int
    message: dict[str, Any] = Field(description="{role: assistant, content: the answer text}")
    finish_reason: str


class ChatCompletion(BaseModel):
    """A ``chat.completion``; ``rag`` is the /v1/ask answer object."""

    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[ChatChoice]
    rag: dict[str, Any] = Field(
        description="The answer object of /v1/ask (citations with path, lines, quote, "
        "verified, support; abstained; confidence; query: the follow-up rewritten...)."
    )


COMPLETION_EXAMPLE: dict[str, Any] = {
    "id": "chatcmpl-5f0c2a9d4b1e4f7a8c3d2e1f0a9b8c7d",
    "object": "chat.completion",
    "created": 1767607200,
    "model": "rag",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Putin’s last visit to North Korea was in July 2000. [1]\n\n"
                "Sources: [1] 004_5e50463e41e8a191.txt:L14",
            },
            "finish_reason": "stop",
        }
    ],
    "rag": {
        "answer": "Putin’s last visit to North Korea was in July 2000. [1]",
        "citations": [
            {
                "path": "004_5e50463e41e8a191.txt",
                "start_line": 14,
                "end_line": 14,
                "quote": "Putin’s last visit to North Korea was in July 2000.",
                "verified": True,
                "support": 1.0,
            }
        ],
        "abstained": False,
        "confidence": 0.93,
        "...": "the rest of the /v1/ask answer object",
    },
}
CHUNKS_EXAMPLE = (
    'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, '
    '"delta": {"role": "assistant", "content": ""}, "finish_reason": null}], "...": ""}\n\n'
    'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, '
    '"delta": {"content": "Putin’s last visit to North Korea was in July 2000. [1]"}, '
    '"finish_reason": null}], "...": ""}\n\n'
    'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": '
    '"\\n\\nSources: [1] 004_5e50463e41e8a191.txt:L14"}, "finish_reason": null}]}\n\n'
    'data: {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, '
    '"finish_reason": "stop"}], "rag": {"citations": ["..."], "abstained": false}}\n\n'
    "data: [DONE]\n\n"
)
