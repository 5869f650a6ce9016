"""The Library tab: upload files (checked on the server, then ingested with a progress bar), list the
collection's documents, remove one, switch to or create another collection."""

from __future__ import annotations

import html
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import gradio as gr

from rag.errors import CiteqaError, ConfigError
from ui import uploads
from ui.engine import EVAL_COLLECTION, Engine, ui_message, validated
from ui.session import Session

if TYPE_CHECKING:
    from collections.abc import Callable


class ChatView(Protocol):
    """What the Library tab needs of the chat (ui.app.ChatUI): how a collection's sources are named."""

    def namer(self, collection: str) -> Callable[[str], str]: ...

log = logging.getLogger("citeqa.ui")


def header_html(*, collection: str, documents: int, llm: str, k: int, hybrid: bool, live: bool = True) -> str:
    """The status line; ``live`` is False only for the copy rendered into the page before the session's first
    refresh (``data-live`` tells scripts and tests that the page has caught up with its session)."""
    docs = f"{documents} document{'s' if documents != 1 else ''}"
    return (
        f'<div class="cq-status"{" data-live" if live else ""}>'
        f'<span class="cq-pill" title="the collection questions are answered from">Collection '
        f'<b id="cq-collection-name">{html.escape(collection)}</b> · {docs}</span>'
        f'<span class="cq-pill" title="the answer backend">Backend <b id="cq-backend-name">{html.escape(llm)}</b>'
        "</span>"
        f'<span class="cq-pill">k {k} · hybrid {"on" if hybrid else "off"}</span></div>'
    )


def documents_html(infos: list[Any], name) -> str:
    if not infos:
        return (
            '<div class="cq-empty">This collection has no documents yet. Drop files above to add them '
            f"({html.escape(uploads.accepted_types())}).</div>"
        )
    rows = []
    for i in infos:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(i.ingested_at))
        rows.append(
            f'<tr><td class="cq-doc" title="{html.escape(i.source, quote=True)}">{html.escape(name(i.source))}</td>'
            f"<td>{i.chunks}</td><td>{i.pages or '—'}</td><td>{uploads.human_size(i.size)}</td><td>{when}</td></tr>"
        )
    total = sum(i.chunks for i in infos)
    return (
        '<table class="cq-docs"><thead><tr><th>Document</th><th>Chunks</th><th>Pages</th><th>Size</th>'
        f'<th>Added</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        f'<div class="cq-docs-total">{len(infos)} documents, {total} chunks</div>'
    )


def report_html(added: list[str], updated: list[str], unchanged: list[str], failed: list[tuple[str, str]],
                seconds: float | None = None) -> str:
    parts = []
    if added or updated or unchanged:
        done = ", ".join(
            f"{len(x)} {w}" for x, w in ((added, "added"), (updated, "updated"), (unchanged, "unchanged")) if x
        )
        took = f" in {seconds:.1f} s" if seconds is not None else ""
        names = ", ".join(html.escape(n) for n in [*added, *updated, *unchanged])
        parts.append(f'<div class="cq-ok-msg">✓ {done}{took}: {names}</div>')
    if failed:
        items = "".join(
            f'<li><b class="cq-bad-file">{html.escape(n)}</b>: {html.escape(r)}</li>' for n, r in failed
        )
        parts.append(
            f'<div class="cq-error" id="cq-upload-errors"><b>{len(failed)} file{"s" if len(failed) != 1 else ""} '
            f"not added</b> (the library is unchanged for {'them' if len(failed) != 1 else 'it'}):"
            f"<ul>{items}</ul></div>"
        )
    return "".join(parts)


class LibraryUI:
    def __init__(self, engine: Engine, chat: ChatView) -> None:
        self.engine = engine
        self.chat = chat

    def clean_uploads(self) -> None:
        """At start: undo what uploads cut short by a killed server left in the upload folders (a file moved
        aside for a replacement, a half-copied or never-ingested upload; see uploads.clean_leftovers)."""
        root = self.engine.settings.data_dir / "uploads"
        if not root.is_dir():
            return
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                qa = self.engine.qa(folder.name)
                with qa.collection.lock(timeout=0):  # not while another process ingests into the collection
                    done = uploads.clean_leftovers(folder, {i.source: i.content_hash for i in qa.sources()})
            except Exception as exc:  # a start-up chore must not stop the server: say so and go on
                log.warning("citeqa: could not tidy the upload folder %s (%s)", folder, exc)
                continue
            if done:
                log.warning("citeqa: %s: put back or removed %d file(s) an interrupted upload left: %s", folder,
                            len(done), ", ".join(done))

    def build(self, sess: gr.State, header: gr.HTML) -> list[gr.components.Component]:
        s = self.engine.settings
        self.clean_uploads()
        with gr.Row():
            with gr.Column(scale=3):
                files = gr.File(
                    label=f"Add documents: {uploads.accepted_types()} (up to {s.max_file_mb:g} MB each)",
                    file_count="multiple",
                    elem_id="cq-upload",
                    height=150,
                )
                upload_msg = gr.HTML("", elem_id="cq-upload-msg")
                docs = gr.HTML("", elem_id="cq-docs")
                with gr.Row():
                    remove_pick = gr.Dropdown(label="Remove a document", choices=[], scale=4,
                                              elem_id="cq-remove-pick")
                    remove = gr.Button("Remove", variant="stop", scale=1, elem_id="cq-remove")
            with gr.Column(scale=2):
                gr.Markdown("#### Collection")
                pick = gr.Dropdown(label="Switch to", choices=self.engine.collections(), value=s.collection,
                                   elem_id="cq-collection-pick", allow_custom_value=False)
                with gr.Row():
                    new_name = gr.Textbox(label="New collection", placeholder="e.g. contracts-2024", scale=3,
                                          elem_id="cq-new-collection")
                    create = gr.Button("Create", scale=1, elem_id="cq-create")
                coll_msg = gr.HTML("", elem_id="cq-collection-msg")
        parts = [docs, remove_pick, pick]
        private = {"api_visibility": "private"}
        serial = {"concurrency_id": "ingest", "concurrency_limit": 1, **private}
        files.upload(self.add, [files, sess], [files, upload_msg, *parts, header], **serial)
        remove.click(self.remove, [remove_pick, sess], [upload_msg, *parts, header], **serial)
        pick.input(self.switch, [pick, sess], [coll_msg, *parts, header, sess], **private)
        create.click(self.create, [new_name, sess], [coll_msg, new_name, *parts, header, sess], **private)
        new_name.submit(self.create, [new_name, sess], [coll_msg, new_name, *parts, header, sess], **private)
        return parts

    # -- views -----------------------------------------------------------------------------------------------
    def refresh(self, sess: Session):
        qa = self.engine.qa(sess.collection)
        infos = qa.sources()
        name = self.chat.namer(sess.collection)
        choices = [(name(i.source), i.source) for i in infos]
        return (
            documents_html(infos, name),
            gr.update(choices=choices, value=None),
            gr.update(choices=self.engine.collections(), value=sess.collection),
            self.chat.header(sess),
        )

    # -- actions ---------------------------------------------------------------------------------------------
    def add(self, files: list[str] | None, sess: Session, progress: gr.Progress = gr.Progress()):  # noqa: B008
        paths = [Path(f) for f in (files or [])]
        if not paths:
            return (None, gr.skip(), *self.refresh(sess))
        qa = self.engine.qa(sess.collection)
        limit_mb = qa.settings.max_file_mb
        folder = self.engine.uploads_dir(sess.collection)
        failed: list[tuple[str, str]] = []
        placed: list[uploads.Placed] = []
        taken: set[str] = set()
        for p in paths:
            reason = uploads.check(p, p.name, limit_mb)
            if reason:
                failed.append((p.name, reason))
                continue
            placed.append(uploads.place(p, p.name, folder, taken))
        uploads.discard_cached(paths)  # placed copies are ours now; Gradio's cached ones are not kept
        added: list[str] = []
        updated: list[str] = []
        unchanged: list[str] = []
        seconds = None
        if placed:
            by_dest = {str(pl.dest): pl for pl in placed}

            def on_progress(done: int, total: int, current: str) -> None:
                label = Path(current).name if current else "done"
                progress((done, max(total, 1)), desc=f"Ingesting {label}", unit="files")

            try:
                progress(0, desc="Reading files…")
                # the write lock only around each short commit: questions keep being answered meanwhile
                report = qa.ingest([pl.dest for pl in placed], on_progress=on_progress,
                                   commit_lock=self.engine.lock(sess.collection).write)
            except CiteqaError as err:
                for pl in placed:
                    pl.rollback()
                failed.extend((pl.name, str(err)) for pl in placed)
            except Exception as err:
                log.exception("ingest of uploads failed")
                for pl in placed:
                    pl.rollback()
                failed.extend((pl.name, f"unexpected {type(err).__name__}: {err}") for pl in placed)
            else:
                seconds = report.seconds
                bad = {str(Path(p).resolve()): r for p, r in report.failed}
                for dest, pl in by_dest.items():
                    if dest in bad:
                        pl.rollback()
                        failed.append((pl.name, bad[dest]))
                    else:
                        pl.commit()
                named = {str(pl.dest): pl.dest.name for pl in placed}
                added = [named.get(str(Path(p).resolve()), Path(p).name) for p in report.added]
                updated = [named.get(str(Path(p).resolve()), Path(p).name) for p in report.updated]
                unchanged = [named.get(str(Path(p).resolve()), Path(p).name) for p in report.unchanged]
        msg = report_html(added, updated, unchanged, failed, seconds)
        return (None, msg, *self.refresh(sess))

    def remove(self, source: str | None, sess: Session):
        if not source:
            gr.Warning("Pick a document to remove first.")
            return (gr.skip(), *self.refresh(sess))
        qa = self.engine.qa(sess.collection)
        name = self.chat.namer(sess.collection)(source)
        try:
            with self.engine.lock(sess.collection).write():
                n = qa.forget(source)
        except CiteqaError as err:
            return (f'<div class="cq-error">{html.escape(str(err))}</div>', *self.refresh(sess))
        folder = self.engine.uploads_dir(sess.collection).resolve()
        p = Path(source)
        if p.parent == folder:
            p.unlink(missing_ok=True)  # our own copy of an upload; files ingested from elsewhere are left alone
        return (f'<div class="cq-ok-msg">Removed {html.escape(name)} ({n} chunks).</div>', *self.refresh(sess))

    def _use(self, name: str, sess: Session, *, create: bool):
        name = (name or "").strip()
        try:
            s = validated(self.engine.settings, collection=name)
        except ConfigError as err:
            msg = ui_message(err)
            return f'<div class="cq-error">{html.escape(msg)}</div>', False
        exists = self.engine.exists(s.collection) and s.collection in self.engine.collections()
        if not create and not exists:  # the page offers only existing ones; an API caller can send any name
            return (f'<div class="cq-error">There is no collection <b>{html.escape(s.collection)}</b>: create it '
                    "below first.</div>"), False
        if create and not exists:
            if EVAL_COLLECTION.match(s.collection):
                return ('<div class="cq-error">Names like eval-0123456789ab are kept for evaluation runs: pick '
                        "another.</div>"), False
            s.collection_dir.mkdir(parents=True, exist_ok=True)  # the only way a session makes a collection
        sess.collection = s.collection
        verb = "Created and switched to" if create and not exists else "Switched to"
        return f'<div class="cq-ok-msg">{verb} collection <b>{html.escape(s.collection)}</b>.</div>', True

    def switch(self, name: str, sess: Session):
        msg, _ = self._use(name, sess, create=False)
        return (msg, *self.refresh(sess), sess)

    def create(self, name: str, sess: Session):
        msg, ok = self._use(name, sess, create=True)
        return (msg, "" if ok else gr.skip(), *self.refresh(sess), sess)
