"""Issue 17's formats end to end, in process: a folder of real .pptx, .xlsx, .csv, .epub and .eml files next to
broken ones is ingested (one line per bad file, the rest indexed), each answers with a citation on its slide,
sheet or chapter whose offsets slice the stored text, and a second ingest changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.compose import Citeqa
from rag.settings import load_settings
from tests.format_files import make_csv, make_eml, make_epub, make_pptx, make_xlsx, make_zip_bomb

pytestmark = pytest.mark.integration

GOOD = {  # file: (question, words the cited passage holds, page of the citation)
    "deck.pptx": ("Who got the dredging contract?", "Van Oord", 1),
    "book.xlsx": ("What was the revenue of the East region?", "Revenue: 3100", 1),
    "staff.csv": ("What was the revenue of the South region in the CSV?", "950.5", None),
    "isles.epub": ("What destroyed the old pier at Kirkwall?", "storm in February", 2),
    "mail.eml": ("How much does invoice 4471 cost?", "812 euros", None),
}


def build(folder: Path) -> dict[str, str]:
    folder.mkdir()
    make_pptx(folder / "deck.pptx")
    make_xlsx(folder / "book.xlsx")
    make_csv(folder / "staff.csv", [("Region", "Revenue"), ("South", 950.5)])
    make_epub(folder / "isles.epub")
    make_eml(folder / "mail.eml")
    raw = make_pptx(folder / "cut.pptx").read_bytes()
    (folder / "cut.pptx").write_bytes(raw[: len(raw) // 3])
    make_zip_bomb(folder / "bomb.xlsx", "xl/workbook.xml")
    (folder / "note.eml").write_text("not a mail at all", encoding="utf-8")
    return {"cut.pptx": "corrupt .pptx (not a zip archive", "bomb.xlsx": "suspicious .xlsx (inflates to 20 MB",
            "note.eml": "not an e-mail"}


def test_new_formats_ingest_answer_with_pages_and_reingest_unchanged(embedder, tmp_path: Path) -> None:
    qa = Citeqa(load_settings(embedder="minilm-int8", collection="formats"), embedder=embedder)
    folder = tmp_path / "docs"
    bad = build(folder)
    report = qa.ingest([folder], progress=False)
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == set(bad)
    for name, start in bad.items():
        assert failed[name].startswith(start) and "\n" not in failed[name], failed[name]
    assert sorted(Path(p).name for p in report.added) == sorted(GOOD)

    for name, (question, words, page) in GOOD.items():
        hits = qa.retriever.retrieve(question, 5)
        assert any(Path(h.chunk.source).name == name for h in hits), (name, [h.chunk.source for h in hits])
        hit = next(h for h in hits if Path(h.chunk.source).name == name)
        text = qa.collection.document_text(hit.chunk.source)
        assert text is not None and text[hit.chunk.start:hit.chunk.end] == hit.chunk.text
        assert words in hit.chunk.text, (name, hit.chunk.text)
        assert hit.chunk.page == page, (name, hit.chunk.page)
        ans = qa.ask(question)
        if not ans.abstained:
            for c in ans.citations:
                assert qa.collection.document_text(c.source)[c.start:c.end] == c.text

    again = qa.ingest([folder], progress=False)
    assert not again.added and not again.updated and again.chunks == 0
    assert sorted(Path(p).name for p in again.unchanged) == sorted(GOOD)
    assert {Path(p).name for p, _ in again.failed} == set(bad)
