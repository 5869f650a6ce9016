"""The chat's event handlers (`ChatUI`): asking, showing a citation's passage, rating an answer, the
session's answer settings. Built once per app by ``ui.app.build_app``; the state of each browser tab comes in
and goes out explicitly (a `Session` in ``gr.State``)."""

from __future__ import annotations

import itertools
import logging
from typing import Any

import gradio as gr

from rag.errors import CiteqaError, ConfigError, NotFoundError
from rag.types import Answer
from ui import feedback, library, render
from ui.engine import Engine, display_name, ui_message, validated
from ui.session import Exchange, Session

log = logging.getLogger("citeqa.ui")
CONTEXT_MAX_BYTES = 32 * 2**20  # bigger documents show a cited span without its surrounding text (not loaded)


class ChatUI:
    """The event handlers. State comes in and goes out explicitly; nothing here is per session."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- helpers ---------------------------------------------------------------------------------------------
    def namer(self, collection: str):
        uploads = self.engine.uploads_dir(collection).resolve()
        return lambda source: display_name(source, uploads)

    def text_of(self, collection: str):
        qa = self.engine.qa(collection)

        def load(source: str) -> str | None:
            try:  # a huge document shows its cited span without context rather than load it whole
                return qa.document_text(source, max_bytes=CONTEXT_MAX_BYTES)
            except CiteqaError:
                return None

        return load

    def header(self, sess: Session, live: bool = True) -> str:
        return library.header_html(
            collection=sess.collection,
            documents=len(self.engine.qa(sess.collection).sources()),
            llm=sess.backend,
            k=sess.k,
            hybrid=sess.hybrid,
            live=live,
        )

    def sources_for(self, sess: Session, turn: int | None, active: int | None = None, page: bool = False) -> str:
        """The sources panel of answer ``turn``; ``page``: with citation ``active`` shown on its PDF page."""
        if turn is None or not 0 <= turn < len(sess.exchanges):
            return render.EMPTY_SOURCES
        ex = sess.exchanges[turn]
        if ex.carried:
            return (f'<div class="cq-empty">Answer {turn + 1} was given before this conversation moved to this '
                    "server: its sources are not shown here.</div>")
        if ex.answer is None:
            return f'<div class="cq-empty">Answer {turn + 1} failed: {render._text(ex.error or "")}</div>'
        return render.sources_html(
            ex.answer, turn, text_of=self.text_of(ex.collection), name=self.namer(ex.collection), active=active,
            page_view=self.page_view(ex.collection) if page else None,
        )

    def page_view(self, collection: str):
        """Citation -> its rendered page (`ingest.page_view.PageView`), or None when it cannot be shown."""
        qa = self.engine.qa(collection)

        def view(c):  # type: ignore[no-untyped-def]
            hashes = {s.source: s.content_hash for s in qa.sources()}
            if c.source not in hashes or c.page is None:
                return None
            return self.engine.page_views.view(c.source, hashes[c.source], c.page, c.text)

        return view

    def rating_label(self, sess: Session) -> str:
        t = sess.selected
        if t is None or sess.exchanges[t].answer is None:
            return "Rate an answer once you have one (right or wrong), optionally with the correct answer."
        ex = sess.exchanges[t]
        done = f" (rated {'right' if ex.vote == 'up' else 'wrong'})" if ex.vote else ""
        return f"Rating **answer {t + 1}**{done}: “{render.markdown_literal(ex.question)}”"  # Markdown: escaped

    # -- chat ------------------------------------------------------------------------------------------------
    def respond(self, question: str, shown: Any, carried: Any, sess: Session, request: gr.Request):
        """Answer ``question`` in the tab's conversation. ``shown`` and ``carried`` are the chat's messages and the
        conversation as the browser holds them: a replica that never saw this tab (its own one went away, or the
        load balancer moved it) takes the conversation from them (``Session.resume``) and goes on with it."""
        question = (question or "").strip()
        if not question:
            gr.Warning("Type a question about your documents first.")
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), sess
            return
        if sess.resume(carried, shown):
            last = sess.exchanges[-1].collection  # the collection the page was asking (its choice travels too)
            try:
                if last != sess.collection and self.engine.exists(last):
                    sess.collection = last
            except ConfigError:  # not a collection name: the session keeps the server's own
                pass
        turn = len(sess.exchanges)
        ex = Exchange(question, sess.collection)
        sess.exchanges.append(ex)
        sess.messages = [*sess.messages, {"role": "user", "content": render.user_html(question)},
                         {"role": "assistant", "content": render.streaming_html("Searching your documents…")}]
        yield sess.messages, "", gr.skip(), gr.skip(), sess.carried(), sess
        try:
            # one answer per session at a time (BusyError, shown in the chat); held until the last piece
            with self.engine.answer_slot(getattr(request, "session_hash", None)):
                qa = self.engine.answering_qa(sess.collection, hybrid=sess.hybrid, backend=sess.backend)
                if not qa.sources():
                    raise NotFoundError(
                        f"collection '{sess.collection}' is empty: add documents in the Library tab first"
                    )
                text, final = "", None
                parts = qa.stream(question, k=sess.k, history=sess.history())
                with self.engine.lock(sess.collection).read():  # retrieval happens before the first piece
                    first = next(parts, None)
                for part in itertools.chain([first] if first is not None else [], parts):
                    if isinstance(part, Answer):
                        final = part
                        continue
                    text += part
                    sess.messages[-1] = {"role": "assistant", "content": render.streaming_html(text)}
                    yield sess.messages, gr.skip(), gr.skip(), gr.skip(), gr.skip(), sess
                if final is None:
                    raise CiteqaError("the answer backend stopped without an answer: try again")
                ex.answer = final
                shown = render.answer_html(final, turn, self.namer(ex.collection))
                sess.messages[-1] = {"role": "assistant", "content": shown}
                sess.selected = turn
        except CiteqaError as err:
            ex.error = str(err)
            sess.messages[-1] = {"role": "assistant", "content": render.error_html(str(err))}
        except Exception as err:  # never a traceback in the chat: one line there, the details in the log
            log.exception("answering %r failed", question)
            ex.error = f"unexpected {type(err).__name__}: {err}"
            sess.messages[-1] = {
                "role": "assistant",
                "content": render.error_html(f"{ex.error} (details are in the server log)"),
            }
        yield (sess.messages, gr.skip(), self.sources_for(sess, sess.selected), self.rating_label(sess),
               sess.carried(), sess)

    def clear(self, sess: Session):
        sess.exchanges, sess.messages, sess.selected = [], [], None
        return [], render.EMPTY_SOURCES, self.rating_label(sess), "", [], sess

    def show_citation(self, target: str, sess: Session):
        parts = (target or "").split(":")  # "turn:n", or "turn:n:page" to show the citation on its PDF page
        try:
            t, n = int(parts[0]), int(parts[1])
        except (ValueError, IndexError):
            return gr.skip(), gr.skip(), sess
        if not 0 <= t < len(sess.exchanges):
            return gr.skip(), gr.skip(), sess
        sess.selected = t
        return self.sources_for(sess, t, active=n, page=parts[2:] == ["page"]), self.rating_label(sess), sess

    def select_message(self, sess: Session, evt: gr.SelectData):
        idx = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        t = int(idx) // 2
        if not 0 <= t < len(sess.exchanges):
            return gr.skip(), gr.skip(), sess
        sess.selected = t
        return self.sources_for(sess, t), self.rating_label(sess), sess

    # -- feedback --------------------------------------------------------------------------------------------
    def vote(self, kind: str, correct: str, sess: Session, turn: int | None = None):
        t = sess.selected if turn is None else turn
        if t is None or not 0 <= t < len(sess.exchanges) or sess.exchanges[t].answer is None:
            gr.Warning("There is no answer to rate yet: ask a question first.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), sess
        ex = sess.exchanges[t]
        if ex.carried:  # its passages are not known here: a feedback case needs them
            gr.Warning("This answer was given before the conversation moved to this server: rate a later one.")
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), sess
        cited = [c.source for c in ex.answer.citations]
        all_sources = [i.source for i in self.engine.qa(ex.collection).sources()]
        root = feedback.docs_root(cited, self.engine.uploads_dir(ex.collection), all_sources)
        case = feedback.case_for(ex.answer, kind, correct, root)
        path = self.engine.feedback_path(ex.collection)
        feedback.append(path, case)
        ex.vote = kind
        before, sess.selected = sess.selected, t
        n = len(feedback.read(path))
        note = "" if case["answers"] or not case["answerable"] else (
            " No correct answer was given: add one to the `answers` list before scoring this case."
        )
        status = (
            f"Saved “{'right' if kind == 'up' else 'wrong'}” for answer {t + 1} as case `{case['id']}` in "
            f"`{path}` ({n} case{'s' if n != 1 else ''}).{note}\n\n"
            f"Measure it in the Evaluate tab, or: `citeqa eval run {path} --docs {root or 'FOLDER'}`"
        )
        shown = self.sources_for(sess, t) if t != before else gr.skip()
        return status, "", self.rating_label(sess), shown, sess

    def like(self, correct: str, sess: Session, evt: gr.LikeData):
        idx = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        if evt.liked is None or evt.liked == "":
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), sess
        liked = evt.liked is True or str(evt.liked).lower() in ("like", "true")
        return self.vote("up" if liked else "down", correct, sess, turn=int(idx) // 2)

    # -- settings --------------------------------------------------------------------------------------------
    def apply_settings(self, k: float | None, hybrid: bool, backend: str | None, sess: Session):
        """``backend`` is a name from the server's list; a spec, URL or path from a session is refused here,
        whatever the page sent (API callers can send any string)."""
        try:
            k_int = int(k) if k is not None and float(k).is_integer() else k
            s = validated(self.engine.settings, collection=sess.collection, k=k_int, hybrid=bool(hybrid))
            name = backend.strip() if isinstance(backend, str) else ""
            self.engine.backend_spec(name or self.engine.settings.default_backend)
        except ConfigError as err:
            msg = ui_message(err)
            gr.Warning(msg)
            return f'<div class="cq-error">Not saved: {render._text(msg)}</div>', gr.skip(), sess
        sess.k, sess.hybrid, sess.backend = s.k, s.hybrid, name or self.engine.settings.default_backend
        return (
            f'<div class="cq-ok-msg">Saved for this session: k {s.k}, hybrid {"on" if s.hybrid else "off"}, '
            f"backend {render._text(sess.backend)}.</div>",
            self.header(sess),
            sess,
        )
