"""A second, foreign MCP client: the official TypeScript SDK (@modelcontextprotocol/sdk, from
npm by `make mcp-js`), run by Debian's nodejs, starts `rag mcp` over stdio.

Without node or the SDK these tests skip; under CI (CI=true) they fail instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_page import in_ci
from tests.api_support import RAG, assert_citations_resolve
from tests.conftest import OFF_TOPIC, PUTIN_2000, PUTIN_2000_LINES, sed_lines
from tests.mcp.conftest import LONG, Served

JS = Path(__file__).resolve().parents[1] / "mcp_js"
SDK = JS / "node_modules" / "@modelcontextprotocol" / "sdk" / "package.json"
TOOLS = {"ask", "search", "read_lines", "list_documents", "index_status"}

pytestmark = pytest.mark.timeout(300)


def require_node() -> str:
    """The node command; a skip (a failure under CI) naming what to run when it is missing."""
    node = shutil.which("node")
    missing = None
    if node is None:
        missing = "node is missing: run `make node` (Debian's nodejs and npm)"
    elif not SDK.exists():
        missing = f"{SDK.parents[2]} lacks the MCP SDK: run `make mcp-js`"
    if missing is not None:
        if in_ci():
            pytest.fail(missing)
        pytest.skip(missing)
    assert node is not None
    return node


@pytest.mark.parametrize(
    ("ci", "expected"), [("true", pytest.fail.Exception), ("", pytest.skip.Exception)]
)
def test_missing_node_fails_under_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch, ci: str, expected: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setattr(sys.modules[__name__], "SDK", Path("/nonexistent/sdk/package.json"))
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception), match="make") as got:
        require_node()
    assert got.type is expected


def test_typescript_client_over_stdio(served: Served, tmp_path: Path) -> None:
    """Tools with their schemas (the SDK checks each structured result against its
    outputSchema), an answer with verified citations, an abstention, tool errors, lines,
    resources, the prompt."""
    node = require_node()
    corpus = served.corpus
    log = tmp_path / "client.log"
    with log.open("w") as errors:
        done = subprocess.run(
            [node, str(JS / "client.mjs"), PUTIN_2000, OFF_TOPIC, RAG, "mcp"],
            env={**os.environ, **served.env},
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            timeout=240,
            check=False,
        )
    assert done.returncode == 0, log.read_text()[-3000:]
    got: dict[str, Any] = json.loads(done.stdout)

    assert got["server"]["name"] == "rag" and "cites file and line" in got["instructions"]
    tools = {t["name"]: t for t in got["tools"]}
    assert set(tools) == TOOLS
    assert all(t["outputSchema"]["type"] == "object" for t in tools.values())
    assert tools["read_lines"]["inputSchema"]["required"] == ["path"]

    ask = got["ask"]
    assert not ask.get("isError")
    answer = ask["structuredContent"]
    assert json.loads(ask["content"][0]["text"]) == answer
    assert not answer["abstained"] and "July 2000" in answer["answer"]
    assert answer["citations"] and all(c["verified"] for c in answer["citations"])
    assert {(c["path"], c["start_line"]) for c in answer["citations"]} <= PUTIN_2000_LINES
    assert_citations_resolve(corpus, answer, {p for p, _ in PUTIN_2000_LINES})

    abstained = got["abstained"]["structuredContent"]
    assert abstained["abstained"] and abstained["sources"] and not abstained["citations"]

    assert got["emptyQuestion"]["isError"] is True
    assert got["emptyQuestion"]["_meta"]["rag/error"]["code"] == "bad_input"
    traversal = got["traversal"]
    assert traversal["isError"] is True and "structuredContent" not in traversal
    assert traversal["_meta"]["rag/error"]["code"] == "path_not_allowed"
    assert "hint: " in traversal["content"][0]["text"]

    cited = answer["citations"][0]
    lines = got["lines"]["structuredContent"]["lines"]
    file_lines = sed_lines(corpus / cited["path"])
    assert [line["text"] for line in lines] == file_lines[
        cited["start_line"] - 1 : cited["end_line"]
    ]

    names = {r["name"] for r in got["resources"]}
    assert names == {p.name for p in corpus.iterdir() if p.name != LONG}
    assert got["templates"][0]["uriTemplate"] == "rag://documents/{+path}"
    first_line = sed_lines(corpus / got["resources"][0]["name"])[0]
    shown = got["resource"]["contents"][0]["text"].split("\n")[0]
    assert shown.lstrip() == f"1  {first_line}"
    assert [p["name"] for p in got["prompts"]] == ["answer_from_documents"]
    assert PUTIN_2000 in got["prompt"]["messages"][0]["content"]["text"]
