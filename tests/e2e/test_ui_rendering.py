"""What the chat shows for answers the real backend rarely gives: a long stream, unsupported sentences,
markup in documents and answers, backend errors and crashes. The real UI over a scripted Citeqa
(tests/e2e/fakes.py), in a real browser."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rag.settings import load_settings
from tests.e2e.conftest import WATCH_STREAM_JS, free_port, shot
from tests.e2e.fakes import SOURCE, ScriptedCiteqa, scripted_factory
from tests.e2e.test_ui import ask, watch_streaming

pytestmark = pytest.mark.e2e


class _Url:
    def __init__(self, url: str) -> None:
        self.url = url


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[_Url, list[ScriptedCiteqa]]]:
    from ui.app import start

    made: list[ScriptedCiteqa] = []
    s = load_settings(data_dir=tmp_path_factory.mktemp("scripted"), collection="scripted")
    app, url = start(s, "127.0.0.1", free_port(), factory=scripted_factory(made))
    try:
        yield _Url(url), made
    finally:
        app.close()


@pytest.fixture
def page(browser, scripted, request: pytest.FixtureRequest):
    from tests.e2e.conftest import failed, open_page

    pg = open_page(browser, scripted[0])
    yield pg
    if failed(request):
        shot(pg, f"FAILED-{request.node.name}")
    pg.context.close()


def test_streamed_pieces_show_up_one_by_one(page) -> None:
    page.evaluate(WATCH_STREAM_JS)
    watch_streaming(page)
    answer = ask(page, "When was the lighthouse built?", 1)
    assert page.evaluate("window.__lengths.size") >= 4, "the answer should grow piece by piece"
    assert "[1]" not in answer and "[2]" not in answer, "markers become chips"
    assert page.locator("#cq-chat .cite-chip").count() == 2
    # the unsupported sentence is marked in the answer, its chip and its passage flagged
    marked = page.locator("#cq-chat .cq-unsupported-sentence")
    assert marked.count() == 1 and "made of gold" in marked.inner_text()
    assert page.locator("#cq-chat .cite-chip.cq-chip-unsupported").count() == 1
    assert "not supported by the passages" in answer
    assert "note: scripted answer" in answer
    page.locator("#cq-chat .cite-chip.cq-t0-n2").click()
    passage = page.locator("#cq-src-0-2.cq-active")
    passage.wait_for()
    assert "does not support" in passage.inner_text()
    assert passage.locator("mark").inner_text() == "Its lamp burned colza oil until 1921."
    assert "harbour notes.txt" in passage.inner_text()
    assert "It is made of gold" in page.inner_text("#cq-sources .cq-unsupported-list")
    shot(page, "10-scripted-unsupported")


def test_markup_is_shown_as_text_never_run(page) -> None:
    answer = ask(page, "What markup is in the file?", 1)
    assert "<script>window.__xss = 2</script>" in answer and "<b>more</b>" in answer
    page.locator("#cq-chat .cite-chip").first.click()
    page.wait_for_selector("#cq-src-0-1.cq-active")
    text = page.inner_text("#cq-src-0-1 .cq-passage-text")
    assert "<script>window.__xss = 1</script>" in text and "A <b>bold</b> claim" in text
    assert page.locator("#cq-sources b:has-text('bold')").count() == 0
    assert page.evaluate("window.__xss") is None


def test_errors_are_one_clear_line_in_the_chat(page, scripted) -> None:
    answer = ask(page, "Is the backend up?", 1)
    assert "Could not answer" in answer and "ollama serve" in answer
    answer = ask(page, "Why does it crash?", 2)
    assert "unexpected RuntimeError: boom" in answer and "server log" in answer
    assert "Traceback" not in page.inner_text("body")
    answer = ask(page, "?!", 3)
    assert "no words in it" in answer
    # a follow-up after errors sends no failed exchange as history
    ask(page, "When was the lighthouse built?", 4)
    q, history = scripted[1][-1].calls[-1]
    assert q == "When was the lighthouse built?" and history == ()
    ask(page, "And the lamp?", 5)
    q, history = scripted[1][-1].calls[-1]
    assert [t.question for t in history] == ["When was the lighthouse built?"]
    shot(page, "11-scripted-errors")


def test_sources_panel_names_the_file(page) -> None:
    ask(page, "When was the lighthouse built?", 1)
    head = page.inner_text("#cq-src-0-1 .cq-passage-head")
    assert "harbour notes.txt" in head or SOURCE in head
    assert "page 1" in head
