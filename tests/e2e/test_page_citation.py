"""Issue 17 in the browser: a PDF citation shown on its page. Upload a PDF, ask, open the citation, click "Show
on page N": the page image appears with highlight boxes, and every cited character (by the PDF's own character
boxes, pypdfium2) lies inside a box while the words after the span do not. Its screenshot
test-output/e2e/09-page-citation-window.png is what ui/static/page-citation.png (the README's) is made from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import SHOTS, Server, shot
from tests.e2e.test_ui import ask, chat_tab, upload
from tests.format_files import text_pdf
from tests.integration.test_page_view import char_boxes

pytestmark = pytest.mark.e2e

PAGES = [
    "Annual report of the Orkney ferry company for 2023. The company opened two new routes and bought one boat.",
    "Passengers. The Orkney ferry company carried 61,200 passengers in 2023, more than in any year before. "
    "The crossing to Kirkwall takes ninety minutes and the boats sail every two hours in summer.",
]
QUESTION = "How many passengers did the Orkney ferry company carry in 2023?"


def test_a_pdf_citation_is_shown_on_its_page_with_the_cited_words_boxed(page, server: Server,
                                                                        tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "ferry-report.pdf", PAGES, size=13)
    assert "1 added" in upload(page, [pdf])
    chat_tab(page)
    answer = ask(page, QUESTION, 1)
    assert "61,200" in answer
    chip = page.locator("#cq-chat .bot .cite-chip").first
    n = int(chip.inner_text())
    chip.click()
    passage = page.locator(f"#cq-src-0-{n}")
    passage.wait_for()
    cited = passage.locator("mark").inner_text()
    assert "61,200" in cited and "page 2" in passage.inner_text()

    passage.locator(".cq-show-page").click()
    img = page.locator(f"#cq-src-0-{n} .cq-pageimg img")
    img.wait_for(timeout=120_000)
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=img.element_handle())
    assert "boxed from the text layer" in page.locator(f"#cq-src-0-{n} .cq-pageview-note").inner_text()
    page.wait_for_timeout(600)  # the smooth scroll to the passage
    # the boxes as fractions of the image, measured in one go (a scroll between two measurements would shift them)
    boxes = page.evaluate(
        """(root) => {
            const f = root.querySelector('.cq-pageimg img').getBoundingClientRect();
            return [...root.querySelectorAll('.cq-hl')].map((h) => {
                const b = h.getBoundingClientRect();
                return [(b.left - f.left) / f.width, (b.top - f.top) / f.height,
                        (b.right - f.left) / f.width, (b.bottom - f.top) / f.height];
            });
        }""",
        passage.element_handle(),
    )
    assert boxes, "the cited span is highlighted on the page"

    def inside(c: tuple[float, ...]) -> bool:
        cx, cy = (c[0] + c[2]) / 2, (c[1] + c[3]) / 2
        return any(x0 - 0.002 <= cx <= x1 + 0.002 and y0 - 0.002 <= cy <= y1 + 0.002 for x0, y0, x1, y1 in boxes)

    stored = server.uploads / pdf.name  # the file the collection holds, as the PDF itself boxes its characters
    words = [w for w in cited.split() if len(w) > 3][:6]
    for word in words:
        assert all(inside(c) for c in char_boxes(stored, 2, word)), word
    assert not any(inside(c) for c in char_boxes(stored, 2, "Kirkwall")), "the words after the span are not boxed"
    assert not any(inside(c) for c in char_boxes(stored, 2, "Passengers.")), "nor the heading before it"

    shot(page, "08-pdf-citation-on-its-page")
    passage.evaluate("(e) => e.scrollIntoView({block: 'start'})")  # the passage's head, then its page
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "09-page-citation-window.png"))  # the window as a user sees it
