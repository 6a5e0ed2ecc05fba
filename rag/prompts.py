"""Prompt templates: files in ``prompts/``, versioned, loaded by name, strict about variables.

A prompt file starts with a header of ``# key: value`` lines (``name``,
``version``, ``variables``), then sections ``[system]`` and ``[user]`` (chat
models) or ``[text]`` (completion models).  Variables are ``$name``; rendering
with a variable missing, or with one the header does not declare, is an error.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from pathlib import Path

from rag.errors import PromptError

DEFAULT_PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
_SECTION = re.compile(r"^\[(system|user|text)\]\s*$", re.M)


@dataclass(frozen=True)
class RenderedPrompt:
    system: str
    user: str
    text: str
    version: str


@dataclass(frozen=True)
class Prompt:
    name: str
    version: str
    variables: frozenset[str]
    sections: dict[str, str]

    @property
    def id(self) -> str:
        return f"{self.name}@{self.version}"

    def render(self, **values: str) -> RenderedPrompt:
        given = set(values)
        if missing := self.variables - given:
            raise PromptError(
                f"prompt {self.id} needs variable(s) {', '.join(sorted(missing))}",
                "pass every variable the prompt's header lists",
            )
        if extra := given - self.variables:
            raise PromptError(
                f"prompt {self.id} does not declare variable(s) {', '.join(sorted(extra))}",
                "add them to the header's `variables:` line or stop passing them",
            )
        out = {}
        for key, body in self.sections.items():
            try:
                out[key] = string.Template(body).substitute(values)
            except (KeyError, ValueError) as exc:
                raise PromptError(
                    f"prompt {self.id} section [{key}] uses an undeclared or malformed "
                    f"variable: {exc}",
                    "declare it in the header, or write a literal $ as $$",
                ) from None
        return RenderedPrompt(
            system=out.get("system", ""),
            user=out.get("user", ""),
            text=out.get("text", ""),
            version=self.id,
        )


def load_prompt(name: str, directory: Path = DEFAULT_PROMPTS_DIR) -> Prompt:
    path = directory / f"{name}.txt"
    if not path.is_file():
        raise PromptError(f"prompt {name!r} not found at {path}", f"create {path}")
    raw = path.read_text(encoding="utf-8")
    header: dict[str, str] = {}
    lines = raw.splitlines(keepends=True)
    body_start = 0
    for i, line in enumerate(lines):
        match = re.match(r"#\s*(\w+)\s*:\s*(.*)$", line.strip())
        if not match:
            body_start = i
            break
        header[match.group(1)] = match.group(2).strip()
    else:
        body_start = len(lines)
    for key in ("name", "version", "variables"):
        if key not in header:
            raise PromptError(f"prompt file {path} lacks the `# {key}:` header line")
    if header["name"] != name:
        raise PromptError(f"prompt file {path} names itself {header['name']!r}, not {name!r}")
    body = "".join(lines[body_start:])
    parts = _SECTION.split(body)
    sections = {parts[i]: parts[i + 1].strip("\n") for i in range(1, len(parts) - 1, 2)}
    if not sections:
        raise PromptError(f"prompt file {path} has no [system]/[user]/[text] section")
    variables = frozenset(v.strip() for v in header["variables"].split(",") if v.strip())
    return Prompt(name=name, version=header["version"], variables=variables, sections=sections)
