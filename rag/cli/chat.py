"""`rag chat`: a conversation with your documents in the terminal.

On a terminal: line editing and history (prompt_toolkit), the answer streamed sentence by
sentence as each passes the citation check (never the model's unchecked words) and then
replaced by the verified answer with its citations, colours unless ``NO_COLOR``.
Otherwise (piped input or output): one question per input line, plain text out, or one JSON
object per question with ``--json``; banners and errors go to stderr so stdout scripts.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.auto_suggest import AutoSuggestFromHistory
from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from rich.text import Text

from rag.answering.conversation import (
    ChatAnswer,
    ChatService,
    resolve_paths,
)
from rag.cli.chat_marks import COMMANDS as MARK_COMMANDS
from rag.cli.chat_marks import ChatMarks, said
from rag.cli.context import read_context
from rag.cli.live import Streaming, rewrite_line
from rag.cli.render import (
    answer_view,
    chat_footer,
    claims_by_citation,
    context_view,
    error_view,
    make_console,
    safe_json,
    sanitize,
    sources_view,
)
from rag.config import BACKENDS, Settings
from rag.errors import InputError, LLMError, RagError

if TYPE_CHECKING:
    from rag.answering.answer import AnswerService
    from rag.runtime import Runtime

PROMPT = "rag> "
COMMANDS = {
    "/help": "this list",
    "/sources": "the passages retrieved for the last answer, with their scores",
    "/open N": "citation N in context: the lines around it in its file, numbered",
    "/backend [NAME]": f"which LLM answers and why; switch with /backend {'|'.join(BACKENDS)}",
    "/reset": "forget the conversation (the next question starts afresh)",
    **MARK_COMMANDS,
    "/exit": "leave (Ctrl-D works too)",
}


@dataclass
class ChatOptions:
    paths: list[str] | None = None
    as_json: bool = False
    verbose: bool = False
    history: Path | None = None


def default_history_path() -> Path:
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "rag" / "chat_history"


class Chat:
    """One chat session: reads lines, answers questions, runs /commands."""

    def __init__(
        self,
        runtime: Runtime,
        options: ChatOptions,
        out: TextIO,
        err: TextIO,
        *,
        interactive: bool,
        color: bool,
    ) -> None:
        self.runtime = runtime
        self.settings: Settings = runtime.settings
        self.options = options
        self.interactive = interactive and not options.as_json
        self.out = make_console(out, color=color, terminal=self.interactive)
        err_color = color and err.isatty()
        self.err = make_console(err, color=err_color, terminal=err_color)
        self.info = self.out if self.interactive else self.err  # banners, notes, errors
        self.commands_out = self.err if options.as_json else self.out
        self.paths = resolve_paths(options.paths, self.settings) if options.paths else None
        self._chat: ChatService | None = None
        self.marks = ChatMarks(self.settings)
        self.failures = 0

    # -- the service ------------------------------------------------------------
    def connect(self) -> ChatService:
        """The chat service, built on first use (and again after a failure, e.g. no index)."""
        if self._chat is None:
            self._chat = ChatService(self._answer_service(), paths=self.paths)
        return self._chat

    def _answer_service(self) -> AnswerService:
        from rag.adapters.llm.select import Choice
        from rag.answering.answer import AnswerService

        runtime = self.runtime
        try:
            service = runtime.answer_service
            probe = getattr(service.default.llm, "probe", None)
            if callable(probe):
                probe()
            return service
        except LLMError as exc:  # the backend asked for cannot serve: go on without a model
            self.info.print(error_view(exc), end="")
            self.info.print("answering extractively for now; /backend NAME switches", style="dim")
            fallback = Choice("extractive", None, f"{exc.message}; answering extractively")
            return AnswerService(runtime.settings, runtime.embedder, runtime.retriever, fallback)

    # -- one line of input -------------------------------------------------------
    def handle(self, line: str) -> bool:
        """Answer or run ``line``; False means leave."""
        line = line.strip()
        if not line:
            return True
        try:
            if COMMAND_WORD.match(line):
                return self.command(line)
            self.ask(line)
        except RagError as exc:
            is_question = not COMMAND_WORD.match(line)
            self.failures += is_question
            if self.options.as_json and is_question:
                error = {"code": exc.code, "message": exc.message, "hint": exc.hint}
                self.out.print(safe_json({"question": line, "error": error}))
            else:
                self.info.print(error_view(exc), end="")
        except KeyboardInterrupt:
            if not self.interactive:
                raise  # a script was interrupted: stop (exit 130), do not go on to the next line
            self.info.print("cancelled", style="dim")
        return True

    def ask(self, question: str) -> None:
        chat = self.connect()
        if self.interactive:
            with Streaming(self.out, self.options.verbose) as live:
                result = chat.ask(
                    question,
                    on_token=live.token,
                    on_rewrite=live.rewrite,
                    on_progress=live.progress,
                )
        else:
            result = chat.ask(question)
            if self.options.verbose and result.rewrite.changed:
                self.err.print(rewrite_line(result.rewrite))
        if self.options.as_json:
            self.out.print(safe_json(answer_json(result)))
            return
        if not self.interactive:
            self.out.print(f"> {sanitize(question)}")
        footer = chat_footer(result.answer)
        self.out.print(answer_view(result.answer, numbered=True, footer=footer), end="")

    # -- commands ---------------------------------------------------------------
    def command(self, line: str) -> bool:
        name, _, arg = line.partition(" ")
        name, arg = name.lower(), arg.strip()
        say = self.commands_out
        if name in ("/exit", "/quit"):
            return False
        if name == "/help":
            width = max(len(c) for c in COMMANDS)
            for usage, what in COMMANDS.items():
                say.print(Text(f"{usage:<{width}}  ", style="bold") + Text(what))
            say.print("Ctrl-C cancels an answer; Ctrl-D leaves.", style="dim")
        elif name == "/reset":
            if self._chat is not None:
                self._chat.reset()
            say.print("conversation forgotten", style="dim")
        elif name == "/backend":
            self.backend(arg)
        elif name == "/sources":
            last = self._last()
            if last is not None:
                say.print(sources_view(last.answer), end="")
        elif name == "/open":
            self.open(arg)
        elif name in ("/good", "/bad", "/lines", "/unanswerable"):
            last = self._last()
            if last is not None:
                say.print(Text(said(self.marks.command(name, arg, last))))
        else:
            raise InputError(f"unknown command {name}", "/help lists the commands")
        return True

    def _last(self) -> ChatAnswer | None:
        last = self._chat.last if self._chat is not None else None
        if last is None:
            self.commands_out.print("nothing asked yet: ask a question first", style="dim")
        return last

    def backend(self, name: str) -> None:
        chat = self.connect()
        say = self.commands_out
        if name:
            if name not in BACKENDS:
                raise InputError(
                    f"unknown backend {name!r}", f"choose one of: {', '.join(BACKENDS)}"
                )
            chat.use_backend(name)
        choice = chat.choice
        say.print(
            Text("backend: ", style="bold")
            + Text(f"{choice.backend}, model {sanitize(choice.model)}")
        )
        say.print(Text("why: ", style="bold") + Text(sanitize(choice.reason)))
        if not name:
            say.print(f"switch with /backend {'|'.join(BACKENDS)}", style="dim")

    def open(self, arg: str) -> None:
        last = self._last()
        if last is None:
            return
        citations = last.answer.citations
        if not citations:
            self.commands_out.print("the last answer cites nothing", style="dim")
            return
        if not arg.isdigit() or not 1 <= int(arg) <= len(citations):
            raise InputError(
                f"there is no citation {arg or '(none given)'}",
                f"use /open N with N from 1 to {len(citations)}",
            )
        n = int(arg)
        citation = citations[n - 1]
        first, lines, note = read_context(self.settings, citation)
        claims = claims_by_citation(last.answer).get(n, [])
        self.commands_out.print(context_view(n, citation, claims, first, lines, note), end="")

    # -- loops --------------------------------------------------------------------
    def banner(self) -> None:
        try:
            with self.out.status("loading the index and the embedding model…", spinner="dots"):
                chat = self.connect()
                chunks = chat.indexed()
        except RagError as exc:
            self.info.print(error_view(exc), end="")
        else:
            choice = chat.choice
            self.out.print(
                Text("rag chat", style="bold")
                + Text(f" · {chunks} passages indexed · backend {choice.backend}", style="dim")
                + Text(f" ({sanitize(choice.reason)})", style="dim")
            )
        if self.paths is not None:
            where = ", ".join(sanitize(p) for p in self.paths)
            self.out.print(f"answers only from {where}", style="dim")
        self.out.print("Ask about your files. /help lists commands; Ctrl-D leaves.", style="dim")
        self.out.print()

    def run_interactive(self) -> int:
        self.banner()
        session = prompt_session(self.options.history or default_history_path())
        while True:
            try:
                line = session.prompt(PROMPT)
            except KeyboardInterrupt:
                continue  # like a shell: Ctrl-C at the prompt clears the line
            except EOFError:
                break
            if not self.handle(line):
                break
            self.out.print()
        return 0

    def run_lines(self, lines: Iterable[str]) -> int:
        try:
            self.connect()
        except RagError as exc:
            self.info.print(error_view(exc), end="")
        first = True
        for line in lines:
            if not line.strip():
                continue
            if not first and not self.options.as_json:
                self.out.print()
            first = False
            if not self.handle(line):
                break
            self.out.file.flush()
        return 1 if self.failures else 0


COMMAND_WORD = re.compile(r"/[A-Za-z]+(?:\s|$)")  # "/open 2"; not "/usr/bin?"


def answer_json(result: ChatAnswer) -> dict[str, object]:
    body = result.answer.model_dump(mode="json")
    body.pop("question", None)
    rewritten = result.rewrite.method if result.rewrite.changed else None
    return {
        "question": result.question,
        "standalone_question": result.rewrite.query,
        "rewritten_by": rewritten,
        **body,
    }


# -- prompt_toolkit -------------------------------------------------------------------
class CommandCompleter(Completer):
    """Completes /commands and backend names; questions are left alone."""

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        text = document.text_before_cursor
        if text.startswith("/backend "):
            word = text[len("/backend ") :]
            for name in BACKENDS:
                if name.startswith(word):
                    yield Completion(name, start_position=-len(word))
        elif text.startswith("/") and " " not in text:
            for usage, what in COMMANDS.items():
                name = usage.split()[0]
                if name.startswith(text):
                    yield Completion(name, start_position=-len(text), display_meta=what)


def prompt_session(history_path: Path) -> PromptSession[str]:
    """Line editing, persistent history (private to the user), command completion."""
    history: History
    try:
        history_path.parent.mkdir(parents=True, exist_ok=True)
        history_path.touch(mode=0o600, exist_ok=True)
        history = FileHistory(str(history_path))
    except OSError:
        history = InMemoryHistory()
    return PromptSession(
        history=history,
        auto_suggest=AutoSuggestFromHistory(),
        completer=CommandCompleter(),
        complete_while_typing=False,
    )


def run_chat(settings: Settings, options: ChatOptions) -> int:
    """Run a chat on the terminal, or over piped lines; returns the exit code."""
    from rag.runtime import Runtime

    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    chat = Chat(
        Runtime(settings), options, sys.stdout, sys.stderr, interactive=interactive, color=color
    )
    try:
        if chat.interactive:
            return chat.run_interactive()
        return chat.run_lines(sys.stdin)
    finally:
        chat.marks.close()
