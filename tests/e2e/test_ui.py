"""The chat UI in a real browser against the real app (real model, real embedded Chroma, real files).

The tests of this module share one server, in the order a user would go: add a document, ask, check the
citation, follow up, give feedback; then the failure paths, sessions, settings, collections and evaluation.
Screenshots land in test-output/e2e/ (and the chat one is what ui/static/screenshot.png is made from).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import VOSTOK, need_shared
from tests.e2e.conftest import MAX_FILE_MB, REPO, WATCH_STREAM_JS, Server, open_page, shot

pytestmark = pytest.mark.e2e

QUESTION = "How many troops did China send?"


# -- helpers ---------------------------------------------------------------------------------------------------
def library_tab(page) -> None:
    page.get_by_role("tab", name="Library").click()
    page.wait_for_selector("#cq-upload input[type=file]", state="attached")


def chat_tab(page) -> None:
    page.get_by_role("tab", name="Chat").click()
    page.wait_for_selector("#cq-question textarea")


def upload(page, files: list[Path]) -> str:
    """Upload through the Library tab; returns the result message once it names every file."""
    library_tab(page)
    page.set_input_files("#cq-upload input[type=file]", [str(f) for f in files])
    names = json.dumps([f.name for f in files])
    page.wait_for_function(
        f"""() => {{
            const done = [...document.querySelectorAll('#cq-upload-msg .cq-ok-msg, #cq-upload-msg .cq-error')]
                .map(e => e.innerText).join('\\n');
            return {names}.every(n => done.includes(n));
        }}""",
        timeout=180_000,
    )
    return page.inner_text("#cq-upload-msg")


def watch_text(page, needle: str) -> None:
    """Record whether ``needle`` ever appears on the page (progress messages come and go quickly)."""
    page.evaluate(
        """(needle) => {
            window.__seen = window.__seen || {};
            window.__seen[needle] = false;
            const look = () => { if (document.body.innerText.includes(needle)) window.__seen[needle] = true; };
            new MutationObserver(look).observe(document.body, {subtree: true, childList: true, characterData: true});
        }""",
        needle,
    )


def saw_text(page, needle: str) -> bool:
    return bool(page.evaluate("(needle) => window.__seen && window.__seen[needle]", needle))


def watch_streaming(page) -> None:
    page.evaluate(
        """() => {
            window.__sawCursor = false;
            const seen = () => { if (document.querySelector('#cq-chat .cq-cursor')) window.__sawCursor = true; };
            new MutationObserver(seen).observe(document.body, {subtree: true, childList: true, characterData: true});
        }"""
    )


def save_settings(page, expect: str, *, k: int | None = None, llm: str | None = None,
                  hybrid: bool | None = None) -> None:
    """Fill the answer settings and save until the confirmation names ``expect``. A page event still running
    from the page's load can reset the form under the test's typing (seen once under load): then fill again."""
    for _ in range(3):
        if k is not None:
            page.fill("#cq-k input", str(k))
        if llm is not None:  # a name from the server's list (a dropdown: sessions never type a spec)
            page.locator("#cq-llm input").click()
            page.get_by_role("option", name=llm, exact=True).click()
        if hybrid is not None:
            page.locator("#cq-hybrid input").set_checked(hybrid)
        page.click("#cq-save-settings")
        try:
            page.wait_for_function(
                f"document.querySelector('#cq-settings-msg').innerText.includes({json.dumps(expect)})",
                timeout=20_000,
            )
            return
        except Exception:  # playwright's TimeoutError: the form was reset before the click
            continue
    raise AssertionError(f"settings never saved as {expect!r}: {page.inner_text('#cq-settings-msg')!r}")


def ask(page, question: str, n: int) -> str:
    """Ask and wait for the n-th assistant message to be final; returns its text."""
    page.fill("#cq-question textarea", question)
    page.click("#cq-send")
    page.wait_for_function(
        f"""() => {{
            const bots = document.querySelectorAll('#cq-chat .bot');
            return bots.length >= {n} && !bots[{n - 1}].querySelector('.cq-cursor')
                && /\\S/.test(bots[{n - 1}].innerText);
        }}""",
        timeout=300_000,
    )
    return page.locator("#cq-chat .bot").nth(n - 1).inner_text()


def library_state(page, server: Server) -> tuple[str, list[str]]:
    library_tab(page)
    files = sorted(p.name for p in server.uploads.glob("*")) if server.uploads.exists() else []
    return page.inner_text("#cq-docs"), files


def ensure_vostok(page, server: Server) -> None:
    """Tests that need a document upload it themselves when an earlier test has not."""
    src = need_shared(VOSTOK) / "vostok-2022.txt"
    if not (server.uploads / src.name).exists():
        upload(page, [src])


# -- the main flow ---------------------------------------------------------------------------------------------
def test_upload_ask_cite_follow_up_and_feedback(page, server: Server) -> None:
    src = need_shared(VOSTOK) / "vostok-2022.txt"
    watch_text(page, "Ingesting")
    msg = upload(page, [src])
    assert saw_text(page, "Ingesting"), "ingest progress is shown"
    assert "1 added" in msg and "vostok-2022.txt" in msg
    docs = page.inner_text("#cq-docs")
    assert "vostok-2022.txt" in docs and "1 documents" in docs
    assert (server.uploads / "vostok-2022.txt").read_bytes() == src.read_bytes()
    assert "1 document" in page.inner_text("#cq-status")
    shot(page, "01-library")

    chat_tab(page)
    watch_streaming(page)
    answer = ask(page, QUESTION, 1)
    assert page.evaluate("window.__sawCursor"), "the answer should appear progressively (streamed)"
    assert "Could not answer" not in answer and "Traceback" not in answer
    assert page.locator("#cq-chat .bot .cq-abstain").count() == 0 and "troops" in answer
    chip = page.locator("#cq-chat .bot .cite-chip").first
    n = int(chip.inner_text())

    # the same question through the API: the citations the page must show
    from gradio_client import Client

    expected = Client(server.url, verbose=False).predict(QUESTION, api_name="/ask")
    cit = next(c for c in expected["citations"] if c["n"] == n)
    text = src.read_text(encoding="utf-8")
    assert Path(cit["source"]).name == "vostok-2022.txt" and text[cit["start"] : cit["end"]] == cit["text"]

    # clicking the chip opens its passage, the cited span highlighted inside its surrounding text
    chip.click()
    passage = page.locator(f"#cq-src-0-{n}")
    passage.wait_for()
    page.wait_for_selector(f"#cq-src-0-{n}.cq-active")
    assert passage.locator("mark").count() == 1
    mark = passage.locator("mark").inner_text()
    assert mark == cit["text"], "the highlighted span is exactly the cited text"
    whole = passage.locator(".cq-passage-text").inner_text()
    i = whole.index(mark)
    assert i > 50 or cit["start"] < 300, "context before the span"
    assert len(whole) - i - len(mark) > 50 or cit["end"] > len(text) - 300, "context after the span"
    assert whole.strip("…")[:40] in text, "the context is the document's own text"
    assert "vostok-2022.txt" in passage.locator(".cq-file").inner_text()
    page.wait_for_timeout(600)  # the smooth scroll
    shot(page, "02-answer-with-citation")

    # a follow-up: a second answer with its own chips; the sources panel follows the newest answer
    follow = ask(page, "How many soldiers from how many nations take part?", 2)
    assert "Could not answer" not in follow
    page.wait_for_selector("#cq-sources-1")
    # an older answer's chip brings that answer's sources back
    page.locator("#cq-chat .bot").nth(0).locator(".cite-chip").first.click()
    page.wait_for_selector(f"#cq-src-0-{n}.cq-active")
    assert "answer 1" in page.inner_text("#cq-rating")

    # feedback on the selected answer: wrong, with the correct answer -> one case in the feedback suite
    page.fill("#cq-correct textarea", "more than 2,000 soldiers")
    page.click("#cq-down")
    page.wait_for_function("document.querySelector('#cq-feedback-status').innerText.includes('Saved')")
    status = page.inner_text("#cq-feedback-status")
    path = server.feedback_file()
    assert str(path) in status and "citeqa eval run" in status
    cases = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines()]
    assert len(cases) == 1
    case = cases[0]
    assert case["question"] == QUESTION
    assert case["answers"] == ["more than 2,000 soldiers"]
    assert case["sources"] == ["vostok-2022.txt"]
    assert case["answerable"] is True and case["feedback"] == "down" and case["id"]
    assert page.input_value("#cq-correct textarea") == ""

    # thumbs up on the newest answer, through the chat's own like button
    page.locator("#cq-chat .bot").nth(1).hover()
    page.locator("#cq-chat button[aria-label='Like']").last.click()
    page.wait_for_function(
        "() => document.querySelector('#cq-feedback-status').innerText.includes('answer 2')"
    )
    cases = [json.loads(ln) for ln in path.read_text(encoding="utf-8").splitlines()]
    assert [c["feedback"] for c in cases] == ["down", "up"]
    assert cases[1]["question"].startswith("How many soldiers") and cases[1]["answers"]
    shot(page, "03-feedback")


def _pdf(path: Path, text: str) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def test_bad_uploads_say_why_and_leave_the_library_as_it_was(page, server: Server, tmp_path: Path) -> None:
    good = _pdf(tmp_path / "harbour.pdf", "The harbour light at Point Ardent was lit in 1874.")
    assert "1 added" in upload(page, [good])
    before = library_state(page, server)

    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    (bad_dir / "notes.xyz").write_text("an unknown format", encoding="utf-8")
    (bad_dir / "empty.txt").write_bytes(b"")
    (bad_dir / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog")
    (bad_dir / "huge.txt").write_text("word " * int(MAX_FILE_MB * 2**20 / 5 * 1.5), encoding="utf-8")
    (bad_dir / "harbour.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")  # a corrupt replacement
    expected = {
        "notes.xyz": "unsupported file type",
        "empty.txt": "empty",
        "broken.pdf": "",
        "huge.txt": "limit",
        "harbour.pdf": "",
    }
    for name, words in expected.items():
        msg = upload(page, [bad_dir / name])
        errors = page.locator("#cq-upload-errors li")
        assert errors.count() == 1, msg
        line = errors.first.inner_text()
        assert line.startswith(name) and words in line.lower(), line
        assert "Traceback" not in msg and "added" not in msg.split("not added")[0]
        assert library_state(page, server) == before, f"{name} changed the library"
    assert (server.uploads / "harbour.pdf").read_bytes() == good.read_bytes(), "the good file was put back"

    # all at once: one line each, still nothing changed
    msg = upload(page, [bad_dir / n for n in expected])
    assert page.locator("#cq-upload-errors li").count() == len(expected)
    assert library_state(page, server) == before
    shot(page, "04-bad-uploads")

    # remove the PDF again through the UI
    page.locator("#cq-remove-pick input").click()
    page.get_by_role("option", name="harbour.pdf").click()
    page.click("#cq-remove")
    page.wait_for_function("document.querySelector('#cq-upload-msg').innerText.includes('Removed harbour.pdf')")
    assert "harbour.pdf" not in page.inner_text("#cq-docs")
    assert not (server.uploads / "harbour.pdf").exists()


def test_clear_conversation(page, server: Server) -> None:
    ensure_vostok(page, server)
    chat_tab(page)
    ask(page, QUESTION, 1)
    page.click("#cq-clear")
    page.wait_for_function("document.querySelectorAll('#cq-chat .bot').length === 0")
    assert "Ask a question" in page.inner_text("#cq-sources")
    answer = ask(page, QUESTION, 1)  # numbering starts again
    assert "troops" in answer and "Could not answer" not in answer
    assert page.locator("#cq-chat .cite-chip.cq-t0-n1").count() >= 1


def test_sessions_do_not_mix(browser, server: Server) -> None:
    a = open_page(browser, server)
    b = open_page(browser, server)
    try:
        ensure_vostok(a, server)
        chat_tab(a)
        ask(a, QUESTION, 1)
        assert b.locator("#cq-chat .bot").count() == 0
        ask(b, "What is the population of Paris?", 1)
        assert b.locator("#cq-chat .bot").count() == 1 and a.locator("#cq-chat .bot").count() == 1
        assert "Not found in your documents" in b.inner_text("#cq-chat")
        assert "Paris" not in a.inner_text("#cq-chat")
        assert "No passage in the collection answers" in b.inner_text("#cq-sources")
    finally:
        a.context.close()
        b.context.close()


def test_settings_are_validated_and_kept_per_session(page, server: Server) -> None:
    ensure_vostok(page, server)
    chat_tab(page)
    page.locator("#cq-settings").get_by_text("Answer settings").click()
    for _ in range(3):  # a page event still running from the load can reset the form under the typing: again
        before = page.inner_text("#cq-settings-msg")
        page.fill("#cq-k input", "0")
        page.click("#cq-save-settings")
        page.wait_for_function(
            "(prev) => { const t = document.querySelector('#cq-settings-msg').innerText;"
            " return t.includes('not valid') || (t !== prev && t.includes('Saved')); }", arg=before)
        if "not valid" in page.inner_text("#cq-settings-msg"):
            break
    assert "between 1 and 100" in page.inner_text("#cq-settings-msg")
    page.locator("#cq-llm input").click()
    offered = [t.replace("✓", "").strip() for t in page.get_by_role("option").all_inner_texts()]  # ✓: selected
    assert offered == ["extractive", "tiny"], "the backends the operator configured, by name only"
    page.keyboard.press("Escape")
    save_settings(page, "k 3, hybrid off, backend extractive", k=3, llm="extractive", hybrid=False)
    page.wait_for_function("document.querySelector('#cq-status').innerText.includes('k 3 · hybrid off')")
    answer = ask(page, QUESTION, 1)
    assert "troops" in answer and "Could not answer" not in answer
    other = open_page(page.context.browser, server)
    try:
        assert "k 5 · hybrid on" in other.inner_text("#cq-status"), "settings belong to the session"
    finally:
        other.context.close()


def test_collections_switch_create_and_empty_collection_message(page, server: Server) -> None:
    ensure_vostok(page, server)
    library_tab(page)
    page.fill("#cq-new-collection textarea", "x")
    page.click("#cq-create")
    page.wait_for_function("document.querySelector('#cq-collection-msg').innerText.includes('not valid')")
    page.fill("#cq-new-collection textarea", "e2e-second")
    page.click("#cq-create")
    page.wait_for_function("document.querySelector('#cq-status').innerText.includes('e2e-second')")
    assert "0 documents" in page.inner_text("#cq-status")
    assert "no documents yet" in page.inner_text("#cq-docs")
    chat_tab(page)
    answer = ask(page, QUESTION, 1)
    assert "Could not answer" in answer and "is empty" in answer and "Library" in answer
    assert "Traceback" not in page.inner_text("body")
    library_tab(page)
    page.locator("#cq-collection-pick input").click()
    page.get_by_role("option", name=server.collection).click()
    page.wait_for_function(f"document.querySelector('#cq-status').innerText.includes('{server.collection}')")
    assert "vostok-2022.txt" in page.inner_text("#cq-docs")


def test_evaluate_tab_runs_a_suite(page, server: Server, tmp_path: Path) -> None:
    pytest.importorskip("evals.runner")
    ensure_vostok(page, server)  # the suite runs over the collection's own documents
    suite = tmp_path / "suite.jsonl"
    suite.write_text(
        "\n".join(
            json.dumps(c)
            for c in [
                {"id": "troops", "question": QUESTION, "answers": ["more than 2,000"],
                 "sources": ["vostok-2022.txt"]},
                {"id": "paris", "question": "What is the population of Paris?", "answers": [],
                 "answerable": False},
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    page.get_by_role("tab", name="Evaluate").click()
    page.set_input_files("#cq-eval-suite-file input[type=file]", str(suite))
    page.wait_for_function("document.querySelector('#cq-eval-suite-file').innerText.includes('suite.jsonl')")
    page.locator("#cq-eval-docs input").click()
    page.get_by_role("option", name=f"documents of collection {server.collection}").click()
    watch_text(page, "Answering the suite")
    page.click("#cq-eval-run")
    page.wait_for_selector("#cq-eval-summary table", timeout=300_000)
    summary = page.inner_text("#cq-eval-summary")
    assert "2 cases" in summary and "exact_match" in summary
    assert saw_text(page, "Answering the suite"), "a progress bar while the suite runs"
    assert "troops" in page.inner_text("#cq-eval-worst") or "perfectly" in page.inner_text("#cq-eval-worst")
    assert page.locator("#cq-eval-chart img").count() == 1
    link = page.locator("#cq-report-link")
    href = link.get_attribute("href")
    assert href and href.endswith("report.html")
    r = page.request.get(server.url.rstrip("/") + href)
    assert r.status == 200 and "citeqa eval report" in r.text()
    page.wait_for_timeout(300)
    shot(page, "05-evaluate")


def test_docs_suite_from_the_evaluate_tab(page, server: Server) -> None:
    """The shipped suite about the bundled docs, picked from the list as a user would."""
    suites = sorted((REPO / "evals" / "suites").glob("*doc*.jsonl"))
    if not suites:
        pytest.skip("no shipped docs suite (evals/suites/*doc*.jsonl) in this checkout")
    page.get_by_role("tab", name="Evaluate").click()
    page.locator("#cq-eval-suite input").click()
    page.get_by_role("option", name=f"{suites[0].stem} (shipped)", exact=True).click()
    assert page.input_value("#cq-eval-docs input") == "the bundled docs/ folder (for the shipped suites)"
    page.click("#cq-eval-run")
    page.wait_for_selector("#cq-eval-summary table", timeout=540_000)
    assert "cases" in page.inner_text("#cq-eval-summary")
    assert page.locator("#cq-report-link").count() == 1
    shot(page, "06-evaluate-docs-suite")


def test_generative_backend_streams_token_by_token(page, server: Server) -> None:
    """Switch this session to the server's Ollama backend "tiny" (a real HTTP server on loopback speaking the
    Ollama API, offered by the operator with --backend) and watch the answer arrive piece by piece, then become
    chips."""
    pytest.importorskip("langchain_ollama")
    ensure_vostok(page, server)
    ollama = server.ollama  # the server offers it as the backend "tiny" (tests/e2e/conftest.py)
    chat_tab(page)
    page.locator("#cq-settings").get_by_text("Answer settings").click()
    save_settings(page, "backend tiny", llm="tiny")
    page.wait_for_function("document.querySelector('#cq-backend-name').innerText === 'tiny'")
    page.evaluate(WATCH_STREAM_JS)
    answer = ask(page, QUESTION, 1)
    assert "Could not answer" not in answer, answer
    assert page.evaluate("window.__lengths.size") >= 4, "tokens should show up as they are generated"
    chip = page.locator("#cq-chat .bot .cite-chip").first
    chip.click()
    page.wait_for_selector(f"#cq-src-0-{chip.inner_text()}.cq-active mark")
    assert any(path == "/api/chat" for path, _ in ollama.requests)
    shot(page, "07-ollama-streaming")
