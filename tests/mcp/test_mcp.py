"""The MCP server with the official Python client: `rag mcp` over stdio (a subprocess) and
`rag serve`'s /mcp over streamable HTTP (a subprocess on 127.0.0.1, with an API key).

One server and index serve every test here (tests/mcp/conftest.py); its /v1/ask gives the
answer the MCP tools must return.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent, TextResourceContents

from rag.mcp.server import ERROR_META
from tests.api_support import RAG, assert_citations_resolve
from tests.conftest import OFF_TOPIC, PUTIN_2000, PUTIN_2000_LINES, sed_lines
from tests.mcp.conftest import KEY, LONG, SHORT_LINES, Served

TOOLS = {"ask", "search", "read_lines", "list_documents", "index_status"}
DOC = "004_5e50463e41e8a191.txt"
T = TypeVar("T")

pytestmark = pytest.mark.timeout(400)


def run(main: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(main)


@asynccontextmanager
async def stdio(env: dict[str, str], log: Path) -> AsyncIterator[Client]:
    """`rag mcp` started by the official client, its stderr in ``log``."""
    params = StdioServerParameters(command=RAG, args=["mcp"], env=env)
    with log.open("a") as errlog:
        async with Client(stdio_client(params, errlog=errlog), read_timeout_seconds=240) as client:
            yield client


@asynccontextmanager
async def http(url: str, key: str | None = KEY) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=120) as session,
        Client(streamable_http_client(f"{url}/mcp", http_client=session)) as client,
    ):
        yield client


def data(result: CallToolResult) -> dict[str, Any]:
    """The structured result of a successful call (its text is the same JSON)."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    first = result.content[0]
    assert isinstance(first, TextContent) and json.loads(first.text) == result.structured_content
    return result.structured_content


def refused(result: CallToolResult, code: str) -> dict[str, str]:
    """The error of a call that failed as a tool error: message and hint as its text, the
    API's error object in its _meta, no structured content (clients would check it against
    the output schema), no traceback, no echo of the arguments."""
    assert result.is_error, result.structured_content
    assert result.structured_content is None and result.meta is not None, result
    error: dict[str, str] = result.meta[ERROR_META]
    assert error["code"] == code, error
    assert error["message"] and error["hint"]
    first = result.content[0]
    assert isinstance(first, TextContent)
    assert first.text == f"{error['message']}\nhint: {error['hint']}"
    assert "Traceback" not in first.text and "input_value" not in first.text
    return error


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def assert_putin_answer(answer: dict[str, Any], corpus: Path) -> None:
    assert not answer["abstained"] and "July 2000" in answer["answer"]
    assert answer["citations"] and all(c["verified"] for c in answer["citations"])
    assert {(c["path"], c["start_line"]) for c in answer["citations"]} <= PUTIN_2000_LINES
    assert_citations_resolve(corpus, answer, {p for p, _ in PUTIN_2000_LINES})


@pytest.fixture(scope="module")
def api_answer(served: Served) -> dict[str, Any]:
    """What POST /v1/ask answers to PUTIN_2000."""
    r = httpx.post(
        f"{served.url}/v1/ask",
        json={"question": PUTIN_2000},
        headers={"Authorization": f"Bearer {KEY}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert_putin_answer(answer, served.corpus)
    return answer


def same_answer(mcp: dict[str, Any], api: dict[str, Any]) -> None:
    """The same object as /v1/ask: every field but the timings."""
    assert set(mcp) == set(api)
    for name in api:
        if name != "timings":
            assert mcp[name] == api[name], name


BAD_CALLS: dict[str, tuple[str, dict[str, Any], str, str]] = {  # tool, arguments, code, message
    "empty": ("ask", {"question": "  "}, "bad_input", "the question is empty"),
    "long": ("ask", {"question": "why " * 501}, "bad_input", "question: String should have"),
    "top_k": ("ask", {"question": PUTIN_2000, "top_k": 0}, "bad_input", "top_k: "),
    "top_k_text": ("ask", {"question": PUTIN_2000, "top_k": "5"}, "bad_input", "top_k: "),
    "paths": ("ask", {"question": PUTIN_2000, "paths": ["x"] * 51}, "bad_input", "paths: "),
    "missing": ("ask", {}, "bad_input", "question: Field required"),
    "traversal": ("read_lines", {"path": "../../../etc/passwd"}, "path_not_allowed", ""),
    "encoded": ("read_lines", {"path": "%2e%2e/%2e%2e/etc/passwd"}, "path_not_allowed", ""),
    "absolute": ("read_lines", {"path": "/etc/passwd"}, "path_not_allowed", ""),
    "unknown": ("read_lines", {"path": "no-such-file.txt"}, "path_not_found", "no such document"),
    "past_end": ("read_lines", {"path": DOC, "start_line": 9999}, "bad_line_range", "line 9999"),
    "backwards": ("read_lines", {"path": DOC, "start_line": 5, "end_line": 2}, "bad_line_range",
                  "the range ends"),
    "empty_query": ("search", {"query": ""}, "bad_input", "the query is empty"),
    "offset": ("list_documents", {"offset": -1}, "bad_input", "offset: "),
}  # fmt: skip


def test_stdio_python_client(served: Served, api_answer: dict[str, Any], tmp_path: Path) -> None:
    """Tools, an answer equal to /v1/ask's, an abstention with its closest passages, bad
    input as tool errors (the server keeps answering), reading lines (a long document cut
    with a note), documents as resources, the prompt."""

    async def main() -> dict[str, Any]:
        got: dict[str, Any] = {}
        async with stdio(served.env, tmp_path / "mcp.log") as client:
            got["info"] = client.server_info
            got["tools"] = (await client.list_tools()).tools
            got["ask"] = await client.call_tool("ask", {"question": PUTIN_2000})
            got["abstain"] = await client.call_tool("ask", {"question": OFF_TOPIC})
            got["bad"] = {
                name: await client.call_tool(tool, arguments)
                for name, (tool, arguments, _, _) in BAD_CALLS.items()
            }
            got["again"] = await client.call_tool("ask", {"question": PUTIN_2000})
            got["search"] = await client.call_tool("search", {"query": "Putin visit", "top_k": 3})
            got["lines"] = await client.call_tool("read_lines", {"path": DOC, "start_line": 14})
            first = data(await client.call_tool("read_lines", {"path": LONG}))
            arguments = {"path": LONG, "start_line": first["end"] + 1, "end_line": 600}
            got["long"] = first, data(await client.call_tool("read_lines", arguments))
            got["documents"] = await client.call_tool("list_documents", {})
            got["status"] = await client.call_tool("index_status", {})
            got["resources"] = (await client.list_resources()).resources
            got["templates"] = (await client.list_resource_templates()).resource_templates
            got["resource"] = await client.read_resource(f"rag://documents/{DOC}")
            got["long_resource"] = await client.read_resource(f"rag://documents/{LONG}")
            got["prompts"] = (await client.list_prompts()).prompts
            got["prompt"] = await client.get_prompt("answer_from_documents", {"question": "Why?"})
        return got

    got = run(main)
    assert got["info"].name == "rag"
    tools = {t.name: t for t in got["tools"]}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.description and tool.output_schema, tool.name
        assert tool.annotations and tool.annotations.read_only_hint, tool.name
    question = tools["ask"].input_schema["properties"]["question"]
    assert question["maxLength"] == 2000 and tools["ask"].input_schema["required"] == ["question"]

    answer = data(got["ask"])
    assert_putin_answer(answer, served.corpus)
    same_answer(answer, api_answer)
    abstained = data(got["abstain"])
    assert abstained["abstained"] and not abstained["citations"] and abstained["sources"]

    for name, (_, _, code, message) in BAD_CALLS.items():
        error = refused(got["bad"][name], code)
        assert error["message"].startswith(message), (name, error)
        assert "passwd" not in error["hint"], name
    assert "list_documents" in refused(got["bad"]["unknown"], "path_not_found")["hint"]
    same_answer(data(got["again"]), api_answer)  # still answering

    passages = data(got["search"])["passages"]
    assert 1 <= len(passages) <= 3
    assert {"path", "start_line", "end_line", "score", "text"} <= set(passages[0])
    lines = data(got["lines"])
    file_lines = sed_lines(served.corpus / DOC)
    assert lines["lines"][0] == {"number": 14, "text": file_lines[13], "page": None,
                                 "page_line": None}  # fmt: skip
    assert lines["end"] == lines["total"] == len(file_lines) and lines["note"] is None

    first, rest = got["long"]  # 250 short lines, then 350 long ones
    assert first["start"] == 1 and first["end"] == 200 and len(first["lines"]) == 200
    assert "call read_lines with start_line=201" in first["note"]
    assert rest["lines"][0]["number"] == 201 and SHORT_LINES < rest["end"] < 600
    assert f"start_line={rest['end'] + 1}" in rest["note"] and "output limit" in rest["note"]
    assert len(json.dumps(rest)) < 45_000

    documents = data(got["documents"])
    corpus = sorted(p.name for p in served.corpus.iterdir() if p.name != LONG)
    assert [d["path"] for d in documents["documents"]] == corpus
    assert documents["total"] == len(corpus) and documents["next_offset"] is None
    status = data(got["status"])
    assert status["status"] == "ready" and status["index"]["documents"] == len(corpus)
    assert status["index"]["version"] == answer["index_version"]

    assert sorted(r.name for r in got["resources"]) == corpus
    assert [t.uri_template for t in got["templates"]] == ["rag://documents/{+path}"]
    content = got["resource"].contents[0]
    assert isinstance(content, TextResourceContents)
    assert content.text.splitlines()[13] == f"14  {file_lines[13]}"
    long = got["long_resource"].contents[0]
    assert isinstance(long, TextResourceContents)
    shown = int(long.text.splitlines()[-2].split()[0])  # the last line shown, then the note
    assert SHORT_LINES < shown < 600
    assert long.text.endswith(f"the read_lines tool with start_line={shown + 1} gives the rest]")
    assert [p.name for p in got["prompts"]] == ["answer_from_documents"]
    text = got["prompt"].messages[0].content
    assert isinstance(text, TextContent) and "Question: Why?" in text.text


def test_http_needs_the_key_and_sessions_share_the_server(
    served: Served, api_answer: dict[str, Any]
) -> None:
    """401 without the key or with a wrong one, 400 for another Host; with the key, three
    sessions at once get /v1/ask's answer from the one server process."""
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        r = httpx.post(f"{served.url}/mcp", json=ping, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.post(f"{served.url}/mcp", json=ping, headers={"Host": "evil.example"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "untrusted_host"

    async def without_key() -> None:
        async with http(served.url, key=None) as client:
            await client.list_tools()

    with pytest.raises(BaseException) as raised:  # the client cannot even list the tools
        run(without_key)
    assert any(isinstance(e, MCPError) for e in leaves(raised.value)), repr(raised.value)

    async def one() -> dict[str, Any]:
        async with http(served.url) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            return data(await client.call_tool("ask", {"question": PUTIN_2000}))

    async def together() -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []

        async def ask_one() -> None:
            answers.append(await one())

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(ask_one)
        return answers

    answers = run(together)
    assert len(answers) == 3
    for answer in answers:
        same_answer(answer, api_answer)
    metrics = httpx.get(f"{served.url}/metrics", headers={"Authorization": f"Bearer {KEY}"})
    assert 'route="/mcp"' in metrics.text
