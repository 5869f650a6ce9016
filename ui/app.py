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
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from rag.errors import CiteqaError, ConfigError
from rag.settings import Settings
from ui import library, render
from ui.api import api_middleware
from ui.chat import ChatUI
from ui.engine import Engine, ui_message, validated
from ui.evaluate import build_eval_tab
from ui.keys import KeyRing, load_keys
from ui.session import Session

log = logging.getLogger("citeqa.ui")
STATIC = Path(__file__).parent / "static"
ASKS_AT_ONCE = 4  # questions answered in parallel (all sessions and the API together)
UPLOAD_CACHE = (600, 3600)  # every 10 minutes, Gradio deletes the files uploaded to it over an hour ago
# local fonts only: no request to a font CDN (the UI works offline and tells no one it was opened)
SYSTEM_FONTS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Roboto", "Noto Sans", "DejaVu Sans",
                "Helvetica Neue", "Arial", "sans-serif")
PRIVATE: dict[str, Any] = {"api_visibility": "private"}  # events of the page, not API endpoints

__all__ = ["ChatUI", "Session", "build_app", "exposure_warning", "is_loopback", "launch_options", "parse_auth",
           "serve", "start"]


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


def build_app(settings: Settings, *, factory: Any = None, engine: Engine | None = None) -> gr.Blocks:
    """The whole UI over ``settings``. ``factory`` builds a Citeqa from Settings (default: ingest.compose.Citeqa);
    ``engine``: one to share (with the HTTP APIs)."""
    engine = engine or Engine(settings, factory)
    ui = ChatUI(engine)
    lib = library.LibraryUI(engine, ui)
    start = Session(collection=settings.collection, k=settings.k, hybrid=settings.hybrid,
                    backend=settings.default_backend)

    with gr.Blocks(title="citeqa: answers that cite the exact passage", fill_width=True,
                   delete_cache=UPLOAD_CACHE) as app:  # files posted to /gradio_api/upload do not pile up
        sess = gr.State(start)
        header = _top_bar(ui, start)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                chat = _chat_tab(ui, engine, start)
            with gr.Tab("Library", id="library"):
                lib_parts = lib.build(sess, header)
            with gr.Tab("Evaluate", id="evaluate") as eval_tab:
                build_eval_tab(engine, eval_tab)
        _wire_chat(ui, chat, sess, header)
        app.load(lib.refresh, [sess], [*lib_parts, header], **PRIVATE)
        gr.api(_api_ask(engine, settings), api_name="ask", concurrency_id="ask", concurrency_limit=ASKS_AT_ONCE)
    return app


@dataclass(frozen=True)
class _ChatTab:
    """The Chat tab's components that events read or write."""

    chatbot: gr.Chatbot
    question: gr.Textbox
    send: gr.Button
    clear: gr.Button
    sources: gr.HTML
    rating: gr.Markdown
    correct: gr.Textbox
    up: gr.Button
    down: gr.Button
    fb_status: gr.Markdown
    k: gr.Number
    hybrid: gr.Checkbox
    backend: gr.Dropdown
    save: gr.Button
    settings_msg: gr.HTML
    chip_target: gr.Textbox
    chip_go: gr.Button
    carried: gr.JSON  # the conversation as the browser keeps it (Session.carried): another replica goes on with it


def _top_bar(ui: ChatUI, start: Session) -> gr.HTML:
    """The brand and the status line (collection, documents, backend); returns the status line."""
    with gr.Row(elem_id="cq-top"):
        gr.HTML(
            '<div class="cq-brand"><span class="cq-logo">citeqa</span><span class="cq-tag">Chat with your '
            "documents. Every claim cites the exact passage.</span></div>",
            elem_id="cq-brand",
        )
        header = gr.HTML(ui.header(start, live=False), elem_id="cq-status")
    return header


def _chat_tab(ui: ChatUI, engine: Engine, start: Session) -> _ChatTab:
    """The conversation on the left; the sources, the rating and the session's answer settings on the right."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=360):
            chatbot, question, send, clear = _conversation()
        with gr.Column(scale=4, min_width=320):
            gr.Markdown("### Sources", elem_id="cq-sources-title")
            sources = gr.HTML(render.EMPTY_SOURCES, elem_id="cq-sources", max_height=560)
            rating, correct, up, down = _rating_box(ui, start)
            fb_status = gr.Markdown("", elem_id="cq-feedback-status")
            k, hybrid, backend, save, settings_msg = _settings_box(engine)
    # the bridge a citation chip uses (ui/static/app.js): "turn:n" into the box, then a click
    chip_target = gr.Textbox(visible="hidden", elem_id="cq-chip-target")
    chip_go = gr.Button("show citation", visible="hidden", elem_id="cq-chip-go")
    carried = gr.JSON([], visible="hidden", elem_id="cq-carried")
    return _ChatTab(chatbot, question, send, clear, sources, rating, correct, up, down, fb_status, k, hybrid, backend,
                    save, settings_msg, chip_target, chip_go, carried)


def _conversation() -> tuple[gr.Chatbot, gr.Textbox, gr.Button, gr.Button]:
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
    return chatbot, question, send, clear


def _rating_box(ui: ChatUI, start: Session) -> tuple[gr.Markdown, gr.Textbox, gr.Button, gr.Button]:
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
    return rating, correct, up, down


def _settings_box(engine: Engine) -> tuple[gr.Number, gr.Checkbox, gr.Dropdown, gr.Button, gr.HTML]:
    settings = engine.settings
    with gr.Accordion("Answer settings (this session)", open=False, elem_id="cq-settings"):
        k = gr.Number(value=settings.k, label="Passages to retrieve (k)", precision=0,
                      elem_id="cq-k")  # no min/max here: apply_settings says what is wrong
        hybrid = gr.Checkbox(value=settings.hybrid, label="Hybrid retrieval (BM25 + dense)", elem_id="cq-hybrid")
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
    return k, hybrid, backend, save, settings_msg


def _wire_chat(ui: ChatUI, tab: _ChatTab, sess: gr.State, header: gr.HTML) -> None:
    """The Chat tab's events: asking (at most ASKS_AT_ONCE at a time), clearing, citations, rating, settings."""
    asking = {"concurrency_id": "ask", "concurrency_limit": ASKS_AT_ONCE, **PRIVATE}
    ask_outputs = [tab.chatbot, tab.question, tab.sources, tab.rating, tab.carried, sess]
    for trigger in (tab.send.click, tab.question.submit):
        trigger(ui.respond, [tab.question, tab.chatbot, tab.carried, sess], ask_outputs, show_progress="hidden",
                **asking).then(
            None, None, None, js="() => window.citeqaScrollChat && window.citeqaScrollChat()"
        )
    cleared = [tab.chatbot, tab.sources, tab.rating, tab.fb_status, tab.carried, sess]
    tab.clear.click(ui.clear, [sess], cleared, **PRIVATE)
    tab.chatbot.clear(ui.clear, [sess], cleared, **PRIVATE)
    tab.chip_go.click(ui.show_citation, [tab.chip_target, sess], [tab.sources, tab.rating, sess],
                      show_progress="hidden", **PRIVATE).then(
        None, [tab.chip_target], None, js="(t) => window.citeqaActivate && window.citeqaActivate(t)"
    )
    tab.chatbot.select(ui.select_message, [sess], [tab.sources, tab.rating, sess], **PRIVATE)
    voted = [tab.fb_status, tab.correct, tab.rating, tab.sources, sess]
    tab.chatbot.like(ui.like, [tab.correct, sess], voted, **PRIVATE)
    tab.up.click(lambda c, s: ui.vote("up", c, s), [tab.correct, sess], voted, **PRIVATE)
    tab.down.click(lambda c, s: ui.vote("down", c, s), [tab.correct, sess], voted, **PRIVATE)
    tab.save.click(ui.apply_settings, [tab.k, tab.hybrid, tab.backend, sess], [tab.settings_msg, header, sess],
                   **PRIVATE)


def _api_ask(engine: Engine, settings: Settings):
    """The ``/ask`` API endpoint over ``engine`` (its docstring is the endpoint's documentation)."""

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

    return api_ask


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


def api_keys(settings: Settings, host: str, credentials: tuple[str, str] | None) -> KeyRing:
    """Who may call /v1 and /api: the keys of the settings; without any, everyone only on a loopback bind
    without --auth (ui/keys.py)."""
    secret = settings.api_keys.get_secret_value() if settings.api_keys else None
    return KeyRing(load_keys(secret, settings.api_keys_file), open_access=is_loopback(host) and credentials is None)


def start(settings: Settings, host: str = "127.0.0.1", port: int = 7860, auth: str | None = None,
          *, factory: Any = None) -> tuple[gr.Blocks, str]:
    """Build and launch without blocking; returns the app and its address (used by `serve` and the tests)."""
    credentials = parse_auth(auth)
    warning = exposure_warning(host, credentials)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    keys = api_keys(settings, host, credentials)  # bad keys stop the start here, in one line
    if not keys.keys and not keys.open_access:
        print("citeqa: the HTTP APIs (/v1, /api) answer no one on this server until it has keys: set "
              "CITEQA_API_KEYS or CITEQA_API_KEYS_FILE", file=sys.stderr, flush=True)
    engine = Engine(settings, factory)
    app = build_app(settings, engine=engine)
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
        app_kwargs={"middleware": [guard_middleware(settings, host, credentials),
                                   api_middleware(settings, engine, keys)]},
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
    print(f"citeqa: OpenAI-compatible API at {url}v1, REST API at {url}api, docs at {url}docs", flush=True)
    try:
        app.block_thread()
    finally:
        app.close()
