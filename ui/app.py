"""The citeqa chat UI (Gradio 6), started by ``citeqa serve``.

One :class:`~ui.engine.Engine` per process owns the Citeqa objects (built once from the settings `serve` was
given); everything that belongs to one browser tab (the conversation, the collection and answer settings it
uses) lives in a per-session :class:`Session` in ``gr.State``, so two people never see each other's answers.

The answer function is also a public API endpoint, ``/ask`` (see ``api_ask``)::

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")            # Client(..., auth=("user", "password")) with --auth
    result = client.predict("How many troops did China send?", api_name="/ask")
    result["short_answer"], result["citations"][0]["source"]

It returns the same object as ``citeqa ask --json``: answer (with [n] markers), short_answer, abstained,
citations (n, source, page, start, end, text, score, supported), unsupported_sentences, backend, notes,
timings (ms) and retrieved passages. Optional arguments: ``k`` (passages to retrieve) and ``collection`` (an
existing one: asking never creates a collection). One answer at a time per session (docs/security.md).
"""

from __future__ import annotations

import ipaddress
import itertools
import logging
import sys
from pathlib import Path
from typing import Any

import gradio as gr

from rag.errors import CiteqaError, ConfigError, NotFoundError
from rag.settings import Settings
from rag.types import Answer
from ui import feedback, library, render
from ui.engine import Engine, display_name, ui_message, validated
from ui.evaluate import build_eval_tab
from ui.session import Exchange, Session

log = logging.getLogger("citeqa.ui")
STATIC = Path(__file__).parent / "static"
ASKS_AT_ONCE = 4  # questions answered in parallel (all sessions and the API together)
CONTEXT_MAX_BYTES = 32 * 2**20  # bigger documents show a cited span without its surrounding text (not loaded)
UPLOAD_CACHE = (600, 3600)  # every 10 minutes, Gradio deletes the files uploaded to it over an hour ago
# local fonts only: no request to a font CDN (the UI works offline and tells no one it was opened)
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Noto Sans", "DejaVu Sans",
                "Helvetica Neue", "Arial", "sans-serif")


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

    def sources_for(self, sess: Session, turn: int | None, active: int | None = None) -> str:
        if turn is None or not 0 <= turn < len(sess.exchanges):
            return render.EMPTY_SOURCES
        ex = sess.exchanges[turn]
        if ex.answer is None:
            return f'<div class="cq-empty">Answer {turn + 1} failed: {render._text(ex.error or "")}</div>'
        return render.sources_html(
            ex.answer, turn, text_of=self.text_of(ex.collection), name=self.namer(ex.collection), active=active
        )

    def rating_label(self, sess: Session) -> str:
        t = sess.selected
        if t is None or sess.exchanges[t].answer is None:
            return "Rate an answer once you have one (right or wrong), optionally with the correct answer."
        ex = sess.exchanges[t]
        done = f" (rated {'right' if ex.vote == 'up' else 'wrong'})" if ex.vote else ""
        return f"Rating **answer {t + 1}**{done}: “{render.markdown_literal(ex.question)}”"  # Markdown: escaped

    # -- chat ------------------------------------------------------------------------------------------------
    def respond(self, question: str, sess: Session, request: gr.Request):
        question = (question or "").strip()
        if not question:
            gr.Warning("Type a question about your documents first.")
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), sess
            return
        turn = len(sess.exchanges)
        ex = Exchange(question, sess.collection)
        sess.exchanges.append(ex)
        sess.messages = [*sess.messages, {"role": "user", "content": render.user_html(question)},
                         {"role": "assistant", "content": render.streaming_html("Searching your documents…")}]
        yield sess.messages, "", gr.skip(), gr.skip(), sess
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
                    yield sess.messages, gr.skip(), gr.skip(), gr.skip(), sess
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
        yield sess.messages, gr.skip(), self.sources_for(sess, sess.selected), self.rating_label(sess), sess

    def clear(self, sess: Session):
        sess.exchanges, sess.messages, sess.selected = [], [], None
        return [], render.EMPTY_SOURCES, self.rating_label(sess), "", sess

    def show_citation(self, target: str, sess: Session):
        try:
            t, n = (int(x) for x in (target or "").split(":", 1))
        except ValueError:
            return gr.skip(), gr.skip(), sess
        if not 0 <= t < len(sess.exchanges):
            return gr.skip(), gr.skip(), sess
        sess.selected = t
        return self.sources_for(sess, t, active=n), self.rating_label(sess), sess

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


def _read_static(name: str) -> str:
    return (STATIC / name).read_text(encoding="utf-8")


def launch_options() -> dict[str, Any]:
    """Theme, CSS and JS: in Gradio 6 these belong to launch(), not Blocks()."""
    return {
        "theme": gr.themes.Soft(primary_hue="indigo", neutral_hue="slate", font=SYSTEM_FONTS),
        "css": _read_static("app.css"),
        "js": _read_static("app.js"),
        "footer_links": ["api", "gradio"],
    }


def build_app(settings: Settings, *, factory: Any = None) -> gr.Blocks:
    """The whole UI over ``settings``. ``factory`` builds a Citeqa from Settings (default: ingest.compose.Citeqa)."""
    engine = Engine(settings, factory)
    ui = ChatUI(engine)
    lib = library.LibraryUI(engine, ui)
    start = Session(collection=settings.collection, k=settings.k, hybrid=settings.hybrid,
                    backend=settings.default_backend)

    with gr.Blocks(title="citeqa: answers that cite the exact passage", fill_width=True,
                   delete_cache=UPLOAD_CACHE) as app:  # files posted to /gradio_api/upload do not pile up
        sess = gr.State(start)
        with gr.Row(elem_id="cq-top"):
            gr.HTML(
                '<div class="cq-brand"><span class="cq-logo">citeqa</span><span class="cq-tag">Chat with your '
                "documents. Every claim cites the exact passage.</span></div>",
                elem_id="cq-brand",
            )
            header = gr.HTML(ui.header(start, live=False), elem_id="cq-status")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=360):
                        chatbot = gr.Chatbot(
                            elem_id="cq-chat",
                            height=520,
                            label="Conversation",
                            show_label=False,
                            latex_delimiters=[],
                            buttons=["copy"],
                            placeholder="<b>Ask about your documents.</b><br>Answers quote the passages they "
                            "come from; click a number to see the passage in its file.",
                        )
                        with gr.Row():
                            question = gr.Textbox(
                                placeholder="Ask a question about your documents…",
                                show_label=False,
                                lines=1,
                                max_lines=6,
                                scale=6,
                                elem_id="cq-question",
                                autofocus=True,
                            )
                            send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="cq-send")
                        with gr.Row():
                            clear = gr.Button("Clear conversation", size="sm", elem_id="cq-clear")
                    with gr.Column(scale=4, min_width=320):
                        gr.Markdown("### Sources", elem_id="cq-sources-title")
                        sources = gr.HTML(render.EMPTY_SOURCES, elem_id="cq-sources", max_height=560)
                        with gr.Group(elem_id="cq-feedback"):
                            rating = gr.Markdown(ui.rating_label(start), elem_id="cq-rating")
                            correct = gr.Textbox(
                                label="Correct answer (optional)",
                                placeholder="What should the answer have been?",
                                lines=1,
                                elem_id="cq-correct",
                            )
                            with gr.Row():
                                up = gr.Button("✓ Right answer", size="sm", elem_id="cq-up")
                                down = gr.Button("✗ Wrong answer", size="sm", elem_id="cq-down")
                        fb_status = gr.Markdown("", elem_id="cq-feedback-status")
                        with gr.Accordion("Answer settings (this session)", open=False, elem_id="cq-settings"):
                            k = gr.Number(value=settings.k, label="Passages to retrieve (k)", precision=0,
                                          elem_id="cq-k")  # no min/max here: apply_settings says what is wrong
                            hybrid = gr.Checkbox(value=settings.hybrid, label="Hybrid retrieval (BM25 + dense)",
                                                 elem_id="cq-hybrid")
                            backend = gr.Dropdown(
                                choices=list(engine.backends),
                                value=settings.default_backend,
                                label="Answer backend",
                                info="the backends this server offers (set by whoever runs it: --backend)",
                                allow_custom_value=False,
                                elem_id="cq-llm",
                            )
                            save = gr.Button("Save settings", size="sm", elem_id="cq-save-settings")
                            settings_msg = gr.HTML("", elem_id="cq-settings-msg")
                # the bridge a citation chip uses (ui/static/app.js): "turn:n" into the box, then a click
                chip_target = gr.Textbox(visible="hidden", elem_id="cq-chip-target")
                chip_go = gr.Button("show citation", visible="hidden", elem_id="cq-chip-go")
            with gr.Tab("Library", id="library"):
                lib_parts = lib.build(sess, header)
            with gr.Tab("Evaluate", id="evaluate") as eval_tab:
                build_eval_tab(engine, eval_tab)

        private: dict[str, Any] = {"api_visibility": "private"}
        asking = {"concurrency_id": "ask", "concurrency_limit": ASKS_AT_ONCE, **private}
        ask_outputs = [chatbot, question, sources, rating, sess]
        for trigger in (send.click, question.submit):
            trigger(ui.respond, [question, sess], ask_outputs, show_progress="hidden", **asking).then(
                None, None, None, js="() => window.citeqaScrollChat && window.citeqaScrollChat()"
            )
        clear.click(ui.clear, [sess], [chatbot, sources, rating, fb_status, sess], **private)
        chatbot.clear(ui.clear, [sess], [chatbot, sources, rating, fb_status, sess], **private)
        chip_go.click(ui.show_citation, [chip_target, sess], [sources, rating, sess], show_progress="hidden",
                      **private).then(None, [chip_target], None,
                                      js="(t) => window.citeqaActivate && window.citeqaActivate(t)")
        chatbot.select(ui.select_message, [sess], [sources, rating, sess], **private)
        voted = [fb_status, correct, rating, sources, sess]
        chatbot.like(ui.like, [correct, sess], voted, **private)
        up.click(lambda c, s: ui.vote("up", c, s), [correct, sess], voted, **private)
        down.click(lambda c, s: ui.vote("down", c, s), [correct, sess], voted, **private)
        save.click(ui.apply_settings, [k, hybrid, backend, sess], [settings_msg, header, sess], **private)
        app.load(lib.refresh, [sess], [*lib_parts, header], **private)

        def api_ask(question: str, k: int | None = None, collection: str | None = None,
                    request: gr.Request = None) -> dict:  # type: ignore[assignment]
            """Answer a question from the documents, citing the exact passages.

            Args:
                question: the question.
                k: passages to retrieve (default: the server's k).
                collection: the collection to ask (default: the server's collection); it must exist.
            Returns:
                The `citeqa ask --json` object: answer, short_answer, abstained, citations, timings, ...
            """
            try:
                name = collection or settings.collection
                qa = engine.qa(validated(settings, collection=name).collection)  # never creates one
                k_ = validated(settings, k=k).k if k else None
                with engine.answer_slot(getattr(request, "session_hash", None)), \
                        engine.lock(qa.settings.collection).read():
                    return qa.ask(question, k=k_).to_dict()
            except ConfigError as err:
                raise gr.Error(ui_message(err)) from None
            except CiteqaError as err:
                raise gr.Error(str(err)) from None
            except Exception as err:  # one line for the caller (not Gradio's generic one), the details in the log
                log.exception("answering %r through the API failed", str(question)[:200])
                raise gr.Error(f"unexpected {type(err).__name__}: {err} (details are in the server log)") from None

        gr.api(api_ask, api_name="ask", concurrency_id="ask", concurrency_limit=ASKS_AT_ONCE)
    return app


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise ConfigError("bad setting auth (--auth / CITEQA_AUTH): must be user:password with both parts non-empty")
    return user, password


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, credentials: tuple[str, str] | None) -> str | None:
    """The loud line for a server other machines can reach without a login (None when there is no risk)."""
    if is_loopback(host) or credentials is not None:
        return None
    return (
        f"citeqa: WARNING: serving on {host}, which other machines can reach, WITHOUT a login: anyone on the "
        "network can read your documents. Pass --auth user:password (or set CITEQA_AUTH)."
    )


def guard_middleware(settings: Settings, host: str, credentials: tuple[str, str] | None) -> Any:
    """The host check (DNS rebinding) for every request, and the failed-login throttle with --auth (ui/guard.py)."""
    from starlette.middleware import Middleware

    from ui.guard import HostPolicy, LoginThrottle, ServerGuard

    return Middleware(ServerGuard, hosts=HostPolicy(host, settings.allowed_hosts),
                      throttle=LoginThrottle() if credentials else None)


def start(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
          *, factory: Any = None) -> tuple[gr.Blocks, str]:
    """Build and launch without blocking; returns the app and its address (used by `serve` and the tests)."""
    credentials = parse_auth(auth)
    warning = exposure_warning(host, credentials)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    app = build_app(settings, factory=factory)
    app.queue(default_concurrency_limit=4)
    app.launch(
        server_name=host,
        server_port=port,
        auth=credentials,
        auth_message="citeqa: log in with the user and password given to `citeqa serve --auth`.",
        prevent_thread_lock=True,
        quiet=True,
        max_file_size=f"{int(settings.max_file_mb * 4) + 1}mb",
        allowed_paths=[str(settings.data_dir / "eval-runs")],
        app_kwargs={"middleware": [guard_middleware(settings, host, credentials)]},
        **launch_options(),
    )
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{app.server_port}/"
    if not settings.chroma:
        from rag.serving import mark_serving

        mark_serving(settings.data_dir, url)  # `citeqa ingest` into this embedded store now says to use the UI
    return app, url


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None) -> None:
    """Start the UI and block until Ctrl-C."""
    app, url = start(settings, host, port, auth)
    print(f"citeqa: serving collection '{settings.collection}' with {settings.llm} at {url}", flush=True)
    print(f"citeqa: answer backends sessions may pick: {', '.join(settings.offered_backends)}", flush=True)
    if auth:
        print("citeqa: login required (--auth)", flush=True)
    try:
        app.block_thread()
    finally:
        app.close()
