"""Markdown in one's own question, in a real browser: an image in it is shown as text and never fetched
(before, the chat rendered the question as Markdown, so every browser showing it loaded the remote image)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from rag.settings import load_settings
from tests.e2e.conftest import free_port, open_page
from tests.e2e.fakes import scripted_factory
from tests.e2e.test_ui import ask

pytestmark = pytest.mark.e2e


class _Url:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture(scope="module")
def pixel_server() -> Iterator[tuple[int, list[str]]]:
    """A loopback HTTP server standing in for the tracker: records every path asked of it."""
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server name
            hits.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield srv.server_address[1], hits
    finally:
        srv.shutdown()


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Url]:
    from ui.app import start

    s = load_settings(data_dir=tmp_path_factory.mktemp("md"), collection="scripted")
    app, url = start(s, "127.0.0.1", free_port(), factory=scripted_factory([]))
    try:
        yield _Url(url)
    finally:
        app.close()


def test_an_image_in_ones_own_question_is_text_and_never_fetched(browser, app_url, pixel_server) -> None:
    port, hits = pixel_server
    page = open_page(browser, app_url)
    try:
        q = f"When was it built? ![x](http://127.0.0.1:{port}/pixel.png) [see](http://127.0.0.1:{port}/link)"
        ask(page, q, 1)
        page.wait_for_timeout(1000)  # time for an image the page would load
        user = page.locator("#cq-chat .user").last
        assert user.locator("img").count() == 0 and user.locator("a").count() == 0
        assert f"![x](http://127.0.0.1:{port}/pixel.png)" in user.inner_text()
        where = page.evaluate("""() => [...document.querySelectorAll('img')].filter(i => i.src.includes('pixel'))
            .map(i => (i.closest('[id]') || {}).id)""")
        assert hits == [] and where == [], f"the browser fetched {hits} for an image in {where}"
    finally:
        page.context.close()
