"""The sources panel's page part for a PDF citation (issue 17): a button until asked, then the page image with
one box per line of the span, positioned in % of the page; nothing for other formats."""

from __future__ import annotations

from ingest.page_view import Box, PageView
from rag.types import Answer, Citation
from ui import render


def cite(source: str, page: int | None) -> Citation:
    return Citation(n=1, source=source, page=page, start=0, end=5, text="Hello", score=1.0)


def answer(c: Citation) -> Answer:
    return Answer(question="q", answer="Hello [1]", short_answer=None, abstained=False, citations=(c,))


def test_a_pdf_citation_offers_its_page_and_others_do_not() -> None:
    html = render.sources_html(answer(cite("/d/a.pdf", 3)), 0, text_of=lambda s: "Hello world")
    assert '<button type="button" class="cq-show-page cq-pv-t0-n1">Show on page 3</button>' in html
    for c in (cite("/d/a.txt", None), cite("/d/deck.pptx", 2), cite("/d/a.pdf", None)):
        assert "cq-show-page" not in render.sources_html(answer(c), 0, text_of=lambda s: "Hello world")


def test_the_page_view_of_the_active_citation() -> None:
    view = PageView(png=b"\x89PNG", width=100, height=140, boxes=(Box(0.1, 0.2, 0.5, 0.25),), by="text layer")
    c = cite("/d/<x>.pdf", 2)
    html = render.sources_html(answer(c), 0, text_of=lambda s: "Hello world", active=1, page_view=lambda _: view,
                               name=lambda s: s.rsplit("/", 1)[-1])
    assert 'src="data:image/png;base64,iVBORw=="' in html and 'alt="page 2 of &lt;x&gt;.pdf"' in html
    assert '<div class="cq-hl" style="left:10.000%;top:20.000%;width:40.000%;height:5.000%"></div>' in html
    assert "Page 2: cited span boxed from the text layer" in html and "cq-show-page" not in html
    gone = render.sources_html(answer(c), 0, text_of=lambda s: None, active=1, page_view=lambda _: None)
    assert "The page cannot be shown: the file has moved or changed since it was ingested." in gone


def test_the_page_of_a_slide_sheet_or_chapter_says_so() -> None:
    from ingest.loaders.common import page_label

    assert [page_label(f"/d/x{s}", 2) for s in (".pdf", ".PPTX", ".xlsx", ".epub", ".png", "")] == [
        "page 2", "slide 2", "sheet 2", "chapter 2", "page 2", "page 2"]
    html = render.sources_html(answer(cite("/d/deck.pptx", 4)), 0, text_of=lambda s: "Hello world")
    assert '<span class="cq-page">slide 4</span>' in html
