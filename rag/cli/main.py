"""`rag` commands.  Thin: parse flags, call a service, render.  Errors become one friendly line."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from rag.cli.eval_cmd import eval_command
from rag.cli.train_cmd import train_command
from rag.config import BACKENDS, Settings, describe_settings, load_settings
from rag.errors import RagError

app = typer.Typer(
    help="Ask your documents questions; every answer cites file and line.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
F = TypeVar("F", bound=Callable[..., Any])

BackendOpt = Annotated[
    str | None,
    typer.Option("--backend", help=f"LLM backend: {', '.join(BACKENDS)} (default: auto)."),
]
IndexOpt = Annotated[
    Path | None, typer.Option("--index", help="Index folder (default: data/index).")
]
CorpusOpt = Annotated[
    Path | None, typer.Option("--corpus", help="Corpus folder (default: data/corpus).")
]


def friendly(func: F) -> F:
    """Turn rag's errors into one line plus a hint, and Ctrl-C into a quiet exit."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except RagError as exc:
            typer.echo(f"error: {exc.message}", err=True)
            if exc.hint:
                typer.echo(f"hint: {exc.hint}", err=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _settings(**overrides: Any) -> tuple[Settings, dict[str, Any]]:
    return load_settings(**overrides), overrides


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
    _setup_logging(verbose)
    settings, _ = _settings(llm_backend=backend, index_dir=index, corpus_dir=corpus)
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
    index: IndexOpt = None,
    corpus: CorpusOpt = None,
) -> None:
    """What the index holds (documents, chunks, size, model) and anything out of sync."""
    settings, _ = _settings(index_dir=index, corpus_dir=corpus)
    from rag.indexing.status import index_status
    from rag.runtime import Runtime

    st = index_status(Runtime(settings).ingest_service())
    if as_json:
        typer.echo(json.dumps(st.as_dict(), indent=2))
    else:
        vector = "?" if st.chunks_vector is None else str(st.chunks_vector)
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
            ("chunks", f"{st.chunks_listed} listed, {vector} vectors, {st.chunks_keyword} keyword"),
            ("size on disk", f"{st.size_bytes / 2**20:.1f} MiB"),
            ("writer", st.writer or "none"),
        ]
        for name, value in rows:
            typer.echo(f"{name:>16}: {value}")
        if st.in_sync:
            typer.echo(f"{'state':>16}: in sync with {settings.corpus_dir}")
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
    _setup_logging(verbose)
    settings, _ = _settings(llm_backend=backend, index_dir=index, top_k=top_k)
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
    _setup_logging(False)
    if verbose:  # rag's own story (backend choice, rejected rewrites), not the libraries'
        logging.getLogger("rag").setLevel(logging.INFO)
    settings, _ = _settings(
        llm_backend=backend, index_dir=index, top_k=top_k, **_model_overrides(model, backend)
    )
    from rag.cli.chat import ChatOptions, run_chat

    options = ChatOptions(paths=paths, as_json=as_json, verbose=verbose, history=history)
    code = run_chat(settings, options)
    if code:
        raise typer.Exit(code)


def _serve_announcing(config: Any, page: str) -> None:
    """Run uvicorn; once it listens, the last line of its start says where the page is."""
    import uvicorn

    class AnnouncingServer(uvicorn.Server):
        async def startup(self, sockets: Any = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # before any request is served (and logged)
                typer.echo(f"\nopen {page} in a browser to ask your documents", err=True)

    AnnouncingServer(config).run()


@app.command()
@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Address to bind (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker processes (default 1). More than one needs a Chroma server "
            "(RAG_CHROMA_URL); see docs/deploy.md."
        ),
    ] = None,
    backend: BackendOpt = None,
    index: IndexOpt = None,
) -> None:
    """Serve the HTTP API."""
    _setup_logging(True)
    overrides = {"host": host, "port": port, "workers": workers, "llm_backend": backend,
                 "index_dir": index}  # fmt: skip
    settings, _ = _settings(**overrides)
    import uvicorn

    from rag.api.app import create_app

    if settings.workers > 1 and not settings.chroma_url:
        from rag.errors import ConfigError

        raise ConfigError(
            f"{settings.workers} workers cannot share the embedded Chroma index in "
            f"{settings.index_dir}: it allows one process",
            "use a Chroma server: start one with `chroma run --path data/chroma-server --port "
            "8001`, set RAG_CHROMA_URL=http://127.0.0.1:8001 and keep the index folder on a "
            "volume every worker sees (`make run-server`; docs/deploy.md); or serve with "
            "--workers 1",
        )
    if not settings.chroma_url:  # one process per embedded index: fail here, clearly
        from rag.adapters.lock import IndexLock

        IndexLock(settings.index_dir, "rag serve", settings.lock_wait).acquire()
    url = f"http://{settings.host}:{settings.port}"
    example = json.dumps({"question": "When did Putin last visit North Korea?"})
    if settings.workers > 1:
        api: Any = None  # each worker process builds its own app from RAG_* variables
    else:
        api = create_app(settings)
    typer.echo(f"rag is serving on {url}  (the page: {url}/  API docs: {url}/docs)", err=True)
    auth = ' -H "Authorization: Bearer $RAG_API_KEY"' if settings.api_key else ""
    typer.echo(
        f"try:  curl -s {url}/v1/ask -H 'Content-Type: application/json'{auth} -d '{example}'",
        err=True,
    )
    if api is not None:
        config = uvicorn.Config(api, host=settings.host, port=settings.port, log_level="info")
        _serve_announcing(config, f"{url}/")
        return
    # Worker processes read their settings from the environment: pass the flags on.
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"RAG_{name.upper()}"] = str(value)
    uvicorn.run(
        "rag.api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="info",
    )


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
    settings, _ = _settings(**overrides)
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


def main() -> None:
    app()


if __name__ == "__main__":
    main()
