"""`rag` commands.  Thin: parse flags, call a service, render.  Errors become one friendly line."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer

from rag.cli.eval_cmd import eval_command
from rag.cli.feedback_cmd import feedback_export, feedback_list
from rag.cli.mcp_cmd import mcp_command
from rag.cli.options import BackendOpt, CorpusOpt, IndexOpt, cli_settings, setup_logging
from rag.cli.serve_cmd import serve_command
from rag.cli.train_cmd import train_command
from rag.config import describe_settings
from rag.errors import RagError

app = typer.Typer(
    help="Ask your documents questions; every answer cites file and line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])


def debugging() -> bool:
    """--debug or RAG_DEBUG=1: show the traceback of an unexpected error."""
    return os.environ.get("RAG_DEBUG", "").strip().lower() in ("1", "true", "yes", "on")


def _index_dir(given: object) -> Path | None:
    """The index folder the command used (for naming a full disk), if the settings load."""
    if isinstance(given, Path):
        return given
    try:
        settings, _ = cli_settings()
    except Exception:
        return None
    return Path(settings.index_dir)


def _say(exc: RagError) -> None:
    typer.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)


def friendly(func: F) -> F:
    """The CLI's one error boundary: rag's errors become one line plus a hint, a full disk
    or a damaged index file is named as such, anything else is one line (the traceback
    with --debug or RAG_DEBUG=1), and Ctrl-C is a quiet exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from rag.adapters.faults import translate

        try:
            return func(*args, **kwargs)
        except RagError as exc:
            _say(exc)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException):
            raise
        except Exception as exc:
            known = translate(exc, _index_dir(kwargs.get("index")))
            if debugging():
                traceback.print_exc()
            if known is not None:
                _say(known)
                raise typer.Exit(2) from None
            text = str(exc).splitlines()[0][:300] if str(exc) else ""
            typer.echo(f"error: unexpected {exc.__class__.__name__}: {text}", err=True)
            if not debugging():
                typer.echo(
                    "hint: run again with --debug (or RAG_DEBUG=1) to see where it failed, "
                    "and report it",
                    err=True,
                )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _options(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")
    ] = False,
) -> None:
    """Ask your documents questions; every answer cites file and line."""
    if debug:
        os.environ["RAG_DEBUG"] = "1"


@app.command()
@friendly
def ingest(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders (default: the corpus folder).")
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="Drop the index and build it anew.")] = False,
    prune: Annotated[
        bool, typer.Option(help="Remove documents that are gone from the given folders.")
    ] = False,
    if_stale: Annotated[
        bool, typer.Option("--if-stale", help="Only ingest the corpus if the index is out of date.")
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch", help="Keep ingesting changes (create, edit, rename, delete) until Ctrl-C."
        ),
    ] = False,
    backend: BackendOpt = None,
    index: IndexOpt = None,
    corpus: CorpusOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Read documents, chunk them by lines, embed them and store them in the index."""
    setup_logging(verbose)
    settings, _ = cli_settings(llm_backend=backend, index_dir=index, corpus_dir=corpus)
    from rag.cli.progress import BarProgress
    from rag.errors import IndexLockedError
    from rag.indexing.loader import check_paths
    from rag.runtime import Runtime

    check_paths(paths or [settings.corpus_dir])
    runtime = Runtime(settings)
    if watch:
        _watch(runtime, paths or [settings.corpus_dir])
        return
    with BarProgress() as progress:
        service = runtime.ingest_service(progress)
        if if_stale:
            reason = service.stale_reason()
            if reason is None:
                typer.echo(f"index is up to date ({settings.index_dir})", err=True)
                return
            typer.echo(f"ingesting {settings.corpus_dir}: {reason}", err=True)
            try:
                report = service.ingest(None, rebuild=False, prune=True)
            except IndexLockedError as exc:  # e.g. `make chat` while `make run` serves it
                typer.echo(f"warning: {exc.message}; using the index as it is", err=True)
                return
        else:
            report = service.ingest(paths or None, rebuild=rebuild, prune=prune)
    _print_report(report)


def _print_report(report: Any) -> None:
    for note in report.notes:
        typer.echo(f"note: {note}", err=True)
    switched = f"; switched to index generation {report.generation}" if report.switched else ""
    typer.echo(
        f"indexed {report.files_indexed} file(s) ({report.chunks_written} chunks, "
        f"{report.chunks_embedded} embedded, {report.chunks_reused} reused), "
        f"{report.files_unchanged} unchanged, {len(report.skipped)} skipped, "
        f"{report.files_removed} removed; {report.chunks_total} chunks in the index"
        f"{switched} [{report.seconds:.1f} s]",
        err=True,
    )


def _watch(runtime: Any, roots: list[Path]) -> None:
    from rag.cli.progress import LineProgress
    from rag.indexing.watch import watch

    settings = runtime.settings
    with runtime.writer_lock("rag ingest --watch"):

        def on_sync(report: Any, error: str | None) -> None:
            if error is not None:
                typer.echo(f"warning: sync failed: {error}", err=True)
            elif report.files_indexed or report.files_removed or report.switched:
                _print_report(report)

        def ready() -> None:
            shown = ", ".join(str(r) for r in roots)
            typer.echo(f"watching {shown} (Ctrl-C to stop)", err=True)

        try:  # one line per sync, not progress bars that pile up over hours
            service = runtime.ingest_service(LineProgress())
            watch(service, roots, settings.watch_debounce_ms, on_sync, ready=ready)
        except KeyboardInterrupt:
            typer.echo("stopped watching", err=True)


@app.command()
@friendly
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Full integrity check: every page, the keyword table, sampled vectors.",
        ),
    ] = False,
    index: IndexOpt = None,
    corpus: CorpusOpt = None,
) -> None:
    """What the index holds (documents, chunks, size, model) and anything out of sync or
    damaged."""
    settings, _ = cli_settings(index_dir=index, corpus_dir=corpus)
    from rag.indexing.status import index_status
    from rag.runtime import Runtime

    st = index_status(Runtime(settings).ingest_service(), full=check)
    if as_json:
        typer.echo(json.dumps(st.as_dict(), indent=2))
    else:
        vector = "?" if st.chunks_vector is None else str(st.chunks_vector)
        keyword = "?" if st.chunks_keyword is None else str(st.chunks_keyword)
        rows = [
            ("index", st.index_dir),
            (
                "generation",
                f"{st.generation}" + (f" (building {st.building})" if st.building else ""),
            ),
            ("embedding model", st.embedding_model or "-"),
            ("chunker", st.chunker or "-"),
            (
                "documents",
                f"{st.documents}" + (f" (+{st.unfinished} unfinished)" if st.unfinished else ""),
            ),
            ("chunks", f"{st.chunks_listed} listed, {vector} vectors, {keyword} keyword"),
            ("size on disk", f"{st.size_bytes / 2**20:.1f} MiB"),
            ("writer", st.writer or "none"),
        ]
        for name, value in rows:
            typer.echo(f"{name:>16}: {value}")
        if st.damaged:
            typer.echo(f"{'state':>16}: damaged")
            for reason in st.out_of_sync:
                typer.echo(f"{'':>16}  - {reason}")
        elif st.in_sync:
            what = "checked whole and " if check else ""
            typer.echo(f"{'state':>16}: {what}in sync with {settings.corpus_dir}")
        else:
            typer.echo(f"{'state':>16}: out of sync")
            for reason in st.out_of_sync:
                typer.echo(f"{'':>16}  - {reason}")
        if st.skipped_links:
            typer.echo(f"{'not indexed':>16}: {len(st.skipped_links)} link(s)")
            for link in st.skipped_links:
                typer.echo(f"{'':>16}  - {link}")
    if not st.in_sync:
        raise typer.Exit(1)


@app.command()
@friendly
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON.")] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=100)] = None,
    backend: BackendOpt = None,
    index: IndexOpt = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Answer a question from the indexed documents, citing file and line."""
    setup_logging(verbose)
    settings, _ = cli_settings(llm_backend=backend, index_dir=index, top_k=top_k)
    from rag.cli.render import render_json, render_text
    from rag.runtime import Runtime

    service = Runtime(settings).answer_service
    choice = service.default
    probe = getattr(choice.llm, "probe", None)
    if callable(probe):
        probe()  # a server that is down or stalled: a clear error now, not a long silent wait
    elif settings.llm_backend == "auto" and choice.backend == "extractive":
        print(f"note: {choice.reason}", file=sys.stderr)
    answer = service.ask(question)
    if as_json:
        render_json(answer, sys.stdout)
    else:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
        render_text(answer, sys.stdout, color=color)


def _model_overrides(model: str | None, backend: str | None) -> dict[str, Any]:
    """--model names an Ollama model tag, or (llamacpp, or a .gguf file) a GGUF path."""
    if model is None:
        return {}
    if backend == "llamacpp" or model.lower().endswith(".gguf") or Path(model).is_file():
        return {"llamacpp_model_path": Path(model).expanduser()}
    return {"ollama_model": model}


@app.command()
@friendly
def chat(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON answer object per question.")
    ] = False,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=100)] = None,
    backend: BackendOpt = None,
    model: Annotated[
        str | None,
        typer.Option("--model", help="Ollama model tag, or a .gguf file for llamacpp."),
    ] = None,
    paths: Annotated[
        list[str] | None,
        typer.Option("--paths", help="Answer only from files under this folder (repeatable)."),
    ] = None,
    index: IndexOpt = None,
    history: Annotated[
        Path | None,
        typer.Option("--history", help="History file (default: ~/.local/state/rag/chat_history)."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show how follow-ups are rewritten.")
    ] = False,
) -> None:
    """Chat with your documents: follow-up questions, cited answers, /help for commands.

    On a terminal: line editing, history, streamed answers.  Piped: one question per line.
    """
    setup_logging(False)
    if verbose:  # rag's own story (backend choice, rejected rewrites), not the libraries'
        logging.getLogger("rag").setLevel(logging.INFO)
    settings, _ = cli_settings(
        llm_backend=backend, index_dir=index, top_k=top_k, **_model_overrides(model, backend)
    )
    from rag.cli.chat import ChatOptions, run_chat

    options = ChatOptions(paths=paths, as_json=as_json, verbose=verbose, history=history)
    code = run_chat(settings, options)
    if code:
        raise typer.Exit(code)


app.command("serve")(friendly(serve_command))
app.command("mcp")(friendly(mcp_command))


@app.command()
@friendly
def config(
    backend: BackendOpt = None,
    index: IndexOpt = None,
    corpus: CorpusOpt = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Print the effective settings and where each value comes from."""
    overrides = {"llm_backend": backend, "index_dir": index, "corpus_dir": corpus}
    settings, _ = cli_settings(**overrides)
    rows = describe_settings(settings, overrides)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    n: {"value": str(v) if v is not None else None, "source": s}
                    for n, v, s, _ in rows
                },
                indent=2,
            )
        )
        return
    width = max(len(n) for n, *_ in rows)
    for name, value, source, description in rows:
        typer.echo(f"{name:<{width}}  {value!s:<40}  [{source}]  {description}")


app.command("eval")(friendly(eval_command))
app.command("train")(friendly(train_command))
feedback_app = typer.Typer(
    help="Marked answers (page, chat, HTTP) and the golden rows they become.",
    no_args_is_help=True,
)
feedback_app.command("list")(friendly(feedback_list))
feedback_app.command("export")(friendly(feedback_export))
app.add_typer(feedback_app, name="feedback")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
