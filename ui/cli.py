"""The `citeqa` command. Builds `Settings` once from flags (over CITEQA_* environment over defaults) and turns
every CiteqaError into one line on stderr and a non-zero exit code."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from rag.errors import CiteqaError
from rag.settings import Settings, load_settings

app = typer.Typer(
    name="citeqa",
    help="Ask questions about your own documents; every answer cites the exact passage it came from.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

DataDirOpt = Annotated[Path | None, typer.Option("--data-dir", help="Data directory [env CITEQA_DATA_DIR]")]
CollectionOpt = Annotated[str | None, typer.Option("--collection", "-c", help="Collection [env CITEQA_COLLECTION]")]
ChromaOpt = Annotated[
    str | None, typer.Option("--chroma", help="host:port of a `chroma run` server; unset = embedded [CITEQA_CHROMA]")
]
EmbedderOpt = Annotated[str | None, typer.Option("--embedder", help="minilm or minilm-int8 [env CITEQA_EMBEDDER]")]
LlmOpt = Annotated[
    str | None,
    typer.Option("--llm", help="extractive | local | llamacpp:PATH.gguf | ollama:MODEL[@host:port] | "
                 "openai:MODEL@URL [env CITEQA_LLM]"),
]
VerifyOpt = Annotated[
    str | None,
    typer.Option("--verify", help="off | local: the local model judges whether the passages answer before an answer "
                 "is given | claims: and judges each cited sentence of a generated answer [env CITEQA_VERIFY]"),
]
KOpt = Annotated[int | None, typer.Option("--k", "-k", help="Passages to retrieve [env CITEQA_K]")]
HybridOpt = Annotated[bool | None, typer.Option("--hybrid/--no-hybrid", help="Fuse BM25 with dense retrieval")]
ExpandOpt = Annotated[
    bool | None,
    typer.Option("--expand/--no-expand", help="With hybrid: a second round from the best passages (multi-hop)"),
]
MmrOpt = Annotated[bool | None, typer.Option("--mmr/--no-mmr", help="Diversify passages with MMR")]


def _settings(**flags: object) -> Settings:
    return load_settings(**flags)


def display_path(source: str) -> str:
    """A path as the user would type it: relative to the working directory when under it."""
    try:
        rel = os.path.relpath(source)
    except ValueError:
        return source
    return source if rel.startswith("..") else rel


def _fail(err: CiteqaError) -> typer.Exit:
    typer.echo(f"citeqa: error: {err}", err=True)
    return typer.Exit(err.exit_code)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (recursive)")],
    prune: Annotated[bool, typer.Option("--prune", help="Remove files under PATHs that no longer exist")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print the summary as JSON")] = False,
    max_file_mb: Annotated[float | None, typer.Option("--max-file-mb", help="Skip files larger than this")] = None,
    max_text_chars: Annotated[int | None, typer.Option(
        "--max-text-chars", help="Skip PDF/DOCX/HTML files whose text is longer [env CITEQA_MAX_TEXT_CHARS]")] = None,
    max_ingest_seconds: Annotated[float | None, typer.Option(
        "--max-ingest-seconds", help="Skip a file whose ingest takes longer [env CITEQA_MAX_INGEST_SECONDS]")] = None,
    chunk_size: Annotated[
        int | None, typer.Option("--chunk-size", help="Max word pieces per chunk [env CITEQA_CHUNK_SIZE]")
    ] = None,
    chunk_overlap: Annotated[
        int | None, typer.Option("--chunk-overlap", help="Word pieces shared by neighbouring chunks")
    ] = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    chroma: ChromaOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Add files and folders to a collection. Re-running re-embeds only new or changed files."""
    from ingest.compose import Citeqa

    s = _settings(data_dir=data_dir, collection=collection, chroma=chroma, embedder=embedder, max_file_mb=max_file_mb,
                  max_text_chars=max_text_chars, max_ingest_seconds=max_ingest_seconds, chunk_size=chunk_size,
                  chunk_overlap=chunk_overlap)
    from rag.serving import refuse_if_served

    refuse_if_served(s.data_dir, s.chroma, "ingest")
    report = Citeqa(s).ingest(paths, prune=prune, progress=not json_out and sys.stderr.isatty())
    for path, reason in report.failed:
        typer.echo(f"citeqa: skipped {display_path(path)}: {reason}", err=True)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(
            f"collection '{s.collection}': {len(report.added)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, {len(report.failed)} failed; "
            f"{report.chunks} chunks in {report.seconds:.1f} s"
        )
    if report.failed:
        raise typer.Exit(1)


def print_answer(answer, *, verbose: bool = False) -> None:  # answer: rag.types.Answer
    from ingest.loaders.common import page_label

    typer.echo(answer.answer)
    for note in answer.notes:
        typer.echo(f"note: {note}")
    if answer.unsupported_sentences:
        typer.echo("\nNot supported by the cited passages:")
        for s in answer.unsupported_sentences:
            typer.echo(f"  ! {s}")
    if answer.citations:
        typer.echo("\nSources:")
        for c in answer.citations:
            page = f", {page_label(c.source, c.page)}" if c.page is not None else ""
            mark = "" if c.supported is not False else "  (unsupported)"
            typer.echo(f"  [{c.n}] {display_path(c.source)}{page}, characters {c.start}-{c.end}{mark}")
            typer.echo(f'      "{c.text}"')
    if verbose:
        t = ", ".join(f"{k} {v:.0f} ms" for k, v in answer.timings.items())
        typer.echo(f"\n({t})")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question")],
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
    source: Annotated[str | None, typer.Option("--source", help="Only search this ingested file")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show timings")] = False,
    min_relevance: Annotated[
        float | None, typer.Option("--min-relevance", help="Abstain below this similarity [CITEQA_MIN_RELEVANCE]")
    ] = None,
    k: KOpt = None,
    hybrid: HybridOpt = None,
    expand: ExpandOpt = None,
    mmr: MmrOpt = None,
    llm: LlmOpt = None,
    verify: VerifyOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    chroma: ChromaOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Answer a question from the collection, with cited passages."""
    from ingest.compose import Citeqa

    s = _settings(data_dir=data_dir, collection=collection, chroma=chroma, embedder=embedder, llm=llm, k=k,
                  hybrid=hybrid, expand=expand, mmr=mmr, min_relevance=min_relevance, verify=verify)
    src = str(Path(source).expanduser().resolve()) if source else None
    answer = Citeqa(s).ask(question, k=k, source=src)
    if json_out:
        typer.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
    else:
        print_answer(answer, verbose=verbose)


@app.command()
def sources(
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
) -> None:
    """List the files in a collection with their chunk counts and content hashes."""
    from ingest.compose import Citeqa

    s = _settings(data_dir=data_dir, collection=collection)
    infos = Citeqa(s).sources()
    if json_out:
        typer.echo(json.dumps([i.to_dict() for i in infos], indent=2))
        return
    if not infos:
        typer.echo(f"collection '{s.collection}' is empty: run `citeqa ingest PATH`")
        return
    for i in infos:
        typer.echo(f"{i.chunks:6d} chunks  {i.content_hash[:12]}  {display_path(i.source)}")
    typer.echo(f"{len(infos)} files, {sum(i.chunks for i in infos)} chunks in collection '{s.collection}'")


@app.command()
def forget(
    path: Annotated[Path, typer.Argument(help="An ingested file")],
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    chroma: ChromaOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """Remove a file's chunks from the collection."""
    from ingest.compose import Citeqa

    s = _settings(data_dir=data_dir, collection=collection, chroma=chroma, embedder=embedder)
    from rag.serving import refuse_if_served

    refuse_if_served(s.data_dir, s.chroma, "forget")
    n = Citeqa(s).forget(path)
    typer.echo(f"removed {n} chunks of {display_path(str(Path(path).resolve()))}")


@app.command()
def chat(
    k: KOpt = None,
    llm: LlmOpt = None,
    verify: VerifyOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    chroma: ChromaOpt = None,
    embedder: EmbedderOpt = None,
) -> None:
    """An interactive session: follow-up questions use the conversation so far. Ctrl-D or /quit ends it."""
    from ingest.compose import Citeqa
    from rag.types import Turn

    s = _settings(data_dir=data_dir, collection=collection, chroma=chroma, embedder=embedder, llm=llm, k=k,
                  verify=verify)
    qa = Citeqa(s)
    history: list[Turn] = []
    typer.echo(f"citeqa chat over collection '{s.collection}' with {s.llm}. /clear forgets, /quit ends.")
    while True:
        try:
            question = input("\n? ").strip()
        except (EOFError, KeyboardInterrupt):
            typer.echo("")
            return
        if question in ("/quit", "/exit"):
            return
        if question == "/clear":
            history.clear()
            typer.echo("(conversation cleared)")
            continue
        if not question:
            continue
        try:
            shown = _chat_turn(qa, question, k, history, stream=s.llm != "extractive")
            if shown is not None:
                history.append(Turn(question, shown.answer))
        except CiteqaError as err:
            typer.echo(f"citeqa: error: {err}", err=True)


def _chat_turn(qa, question: str, k: int | None, history: list, *, stream: bool):  # qa: Citeqa; -> Answer | None
    """Answer one question of a chat: with ``stream``, the text is printed as it comes, then the checked answer's
    sources (its text again only when it differs from what was streamed). Returns the checked answer (None when
    the answerer gave none)."""
    from rag.types import Answer

    final = None
    streamed: list[str] = []
    for part in qa.stream(question, k=k, history=history):
        if isinstance(part, Answer):
            final = part
        elif stream:
            streamed.append(part)
            typer.echo(part, nl=False)
    if final is None:
        return None
    shown = final
    if streamed:
        typer.echo("")
        # the checked answer renumbers markers and may fall back to extractive evidence: show it
        # again only when it differs from what was streamed
        if "".join(streamed).strip() == final.answer.strip():
            shown = _without_text(final)
        else:
            typer.echo("\nChecked answer:")
    print_answer(shown)
    return final  # with its text: the conversation remembers what was said, even when it was not printed twice


def _without_text(answer):
    from dataclasses import replace

    return replace(answer, answer="")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port")] = 7860,
    auth: Annotated[
        str | None, typer.Option("--auth", help="user:password to require a login [env CITEQA_AUTH]")
    ] = None,
    llm: LlmOpt = None,
    verify: VerifyOpt = None,
    data_dir: DataDirOpt = None,
    collection: CollectionOpt = None,
    chroma: ChromaOpt = None,
    embedder: EmbedderOpt = None,
    backend: Annotated[
        list[str] | None,
        typer.Option("--backend", "--backends", help="NAME=SPEC, repeatable: an answer backend sessions may pick, "
                     "beside extractive and --llm (named default) [env CITEQA_BACKENDS=name=spec;name=spec]"),
    ] = None,
    backends_file: Annotated[
        Path | None,
        typer.Option("--backends-file", help="JSON or TOML file of NAME = SPEC backends [env CITEQA_BACKENDS_FILE]"),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option("--allowed-host", "--allowed-hosts", help="a Host name the server answers to besides loopback "
                     "and --host, repeatable (*.example.org, * = any) [env CITEQA_ALLOWED_HOSTS=name,name]"),
    ] = None,
) -> None:
    """Start the chat UI in the browser."""
    from ui.app import serve as serve_ui

    s = _settings(data_dir=data_dir, collection=collection, chroma=chroma, embedder=embedder, llm=llm, verify=verify,
                  backends=backend or None, backends_file=backends_file, allowed_hosts=allowed_host or None)
    serve_ui(s, host=host, port=port, auth=auth or (s.auth.get_secret_value() if s.auth else None))


def _register_eval() -> None:
    try:
        from evals.cli import register
    except ImportError:  # the eval module is optional at this stage of the checkout
        return
    register(app)


_register_eval()


def main() -> None:
    try:
        app()
    except CiteqaError as err:
        raise SystemExit(_fail(err).exit_code) from None
    except KeyboardInterrupt:
        typer.echo("citeqa: interrupted", err=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
