"""The formats of issue 17 (.pptx, .xlsx, .csv, .epub, .eml) on real files built here: the text, the page
(slide, sheet, chapter) of each passage, chunks whose offsets slice the text back, the same text and chunk ids
when read again, and one clean FileError line for every broken or hostile file."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from ingest.chunking import chunk_document
from ingest.loaders import SUPPORTED_SUFFIXES, load_document, sheets
from ingest.loaders.common import Limits
from ingest.loaders.extract import document_from_bytes
from rag.errors import FileError
from tests.format_files import (
    make_csv,
    make_eml,
    make_epub,
    make_pptx,
    make_xlsx,
    make_zip_bomb,
)
from tests.unit.test_loaders import failure, write

BUILDERS = {".pptx": make_pptx, ".xlsx": make_xlsx, ".csv": make_csv, ".epub": make_epub, ".eml": make_eml}


def page_of(doc, needle: str) -> int | None:  # type: ignore[no-untyped-def]
    at = doc.text.index(needle)
    return doc.page_at(at)


@pytest.mark.parametrize("suffix", sorted(BUILDERS))
def test_new_formats_are_supported_and_chunks_slice_back(tmp_path: Path, suffix: str) -> None:
    assert suffix in SUPPORTED_SUFFIXES
    path = BUILDERS[suffix](tmp_path / f"doc{suffix}")
    doc = load_document(path)
    assert doc.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    for span in doc.pages:
        assert 0 <= span.start <= span.end <= len(doc.text)
    chunks = chunk_document(doc, 40, 8)
    assert chunks
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert c.page == doc.page_at(c.start)
    again = load_document(path)  # the same file reads the same: same text, same chunk ids (re-ingest unchanged)
    assert again == doc
    assert [c.id for c in chunk_document(again, 40, 8)] == [c.id for c in chunks]


def test_pptx_slide_is_the_page_with_notes_and_tables(tmp_path: Path) -> None:
    doc = load_document(make_pptx(tmp_path / "deck.pptx"))
    assert [p.page for p in doc.pages] == [1, 2, 3]
    assert page_of(doc, "The new quay opens in March 2027.") == 1
    assert page_of(doc, "Speaker notes: Mention that the dredging contract went to Van Oord.") == 1
    assert page_of(doc, "Total cost: 38 million euros.") == 2
    assert page_of(doc, "Quay | 30 M") == 2
    assert page_of(doc, "Speaker notes: Thank the port authority.") == 3
    first = doc.pages[0]
    assert doc.text[first.start:first.end].startswith("Harbour expansion\n")


def test_xlsx_rows_carry_sheet_row_and_headers(tmp_path: Path) -> None:
    doc = load_document(make_xlsx(tmp_path / "book.xlsx"))
    assert "Sales, row 1 (headers): Region | Quarter | Revenue" in doc.text
    assert page_of(doc, "Sales, row 3: Region: South | Quarter: Q1 | Revenue: 950.5") == 1
    assert page_of(doc, "Staff, row 2: Name: Ada | Role: Pilot") == 2
    assert "1200.0" not in doc.text and "Revenue: 1200" in doc.text


def test_xlsx_blank_rows_and_columns_keep_their_numbers(tmp_path: Path) -> None:
    rows = [(None, None), ("Name", None, "Age"), (None, None, None), ("Bo", "x", 7)]
    doc = load_document(make_xlsx(tmp_path / "gaps.xlsx", {"People": rows}))
    assert doc.text == "People, row 2 (headers): Name | Age\nPeople, row 4: Name: Bo | column 2: x | Age: 7"


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_csv_rows_with_headers(tmp_path: Path, delimiter: str) -> None:
    doc = load_document(make_csv(tmp_path / "t.csv", delimiter=delimiter))
    assert doc.pages == () and doc.mime == "text/csv"
    assert doc.text.splitlines()[2] == "Row 3: Region: South | Quarter: Q1 | Revenue: 950.5"


def test_epub_chapter_is_the_page(tmp_path: Path) -> None:
    doc = load_document(make_epub(tmp_path / "book.epub"))
    assert len(doc.pages) == 2
    assert page_of(doc, "The lighthouse keeper counted 117 ships in the winter of 1903.") == 1
    assert page_of(doc, "A storm in February destroyed the old pier at Kirkwall.") == 2


def test_eml_headers_body_and_text_attachments(tmp_path: Path) -> None:
    doc = load_document(make_eml(tmp_path / "mail.eml"))
    assert doc.text.startswith("From: Ada Lovelace <ada@example.org>\nTo: harbour-board@example.org\n")
    assert "Subject: Quay delivery schedule" in doc.text
    assert "The cement for the new quay arrives on 14 April." in doc.text
    assert "<p>" not in doc.text and doc.text.count("14 April") == 1  # the plain body, not also its HTML twin
    assert "Attachment: invoice.txt\nInvoice 4471: 3 pallets of cement, 812 euros." in doc.text
    assert doc.text.endswith("Other attachments (not read): logo.png")


def test_eml_html_only_body(tmp_path: Path) -> None:
    raw = (b"From: a@example.org\nSubject: Notice\nContent-Type: text/html; charset=utf-8\n\n"
           b"<html><body><p>The gate closes at <b>6 pm</b>.</p><script>x()</script></body></html>\n")
    doc = load_document(write(tmp_path / "h.eml", raw))
    assert doc.text == "From: a@example.org\nSubject: Notice\n\nThe gate closes at 6 pm."


# ------------------------------------------------------------------------------------------ broken files

ZIPPED = {".pptx": "ppt/presentation.xml", ".xlsx": "xl/workbook.xml", ".epub": "META-INF/container.xml"}


@pytest.mark.parametrize("suffix", sorted(ZIPPED))
def test_truncated_zip_formats(tmp_path: Path, suffix: str) -> None:
    raw = BUILDERS[suffix](tmp_path / f"good{suffix}").read_bytes()
    reason = failure(write(tmp_path / f"cut{suffix}", raw[: len(raw) // 2]))
    assert reason.startswith(f"corrupt {suffix} (not a zip archive; truncated or password-protected?)"), reason


@pytest.mark.parametrize("suffix", sorted(ZIPPED))
def test_zip_without_its_main_part(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"other{suffix}"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    assert failure(path).startswith(f"corrupt {suffix} (no {ZIPPED[suffix]})")


@pytest.mark.parametrize("suffix", sorted(ZIPPED))
def test_zip_bombs_are_refused_before_inflating(tmp_path: Path, suffix: str) -> None:
    path = make_zip_bomb(tmp_path / f"bomb{suffix}", ZIPPED[suffix])
    assert path.stat().st_size < 100_000
    assert failure(path) == f"suspicious {suffix} (inflates to 20 MB, zip bomb?): not ingested"


@pytest.mark.parametrize("suffix", sorted(ZIPPED))
def test_garbage_inside_a_valid_zip(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"junk{suffix}"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(ZIPPED[suffix], "<not xml")
        zf.writestr("[Content_Types].xml", "<Types/>")
    assert failure(path).startswith(f"corrupt {suffix} (")


def test_encrypted_xlsx_is_not_a_zip(tmp_path: Path) -> None:
    # a password-protected workbook is an OLE compound file, not a zip
    path = write(tmp_path / "locked.xlsx", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4000)
    assert "password-protected?" in failure(path)


def test_drm_epub_is_refused(tmp_path: Path) -> None:
    path = make_epub(tmp_path / "drm.epub")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("META-INF/encryption.xml", "<encryption/>")
    assert failure(path) == "encrypted .epub (DRM): only DRM-free e-books can be read"


def test_huge_sheet_stops_at_the_text_limit(tmp_path: Path) -> None:
    path = make_xlsx(tmp_path / "big.xlsx", {"Log": [("n", "event")] + [(i, "x" * 50) for i in range(3000)]})
    raw = path.read_bytes()
    with pytest.raises(FileError) as info:
        document_from_bytes(path, raw, "h", limits=Limits(max_chars=20_000))
    assert "over the limit of 20,000 characters per file (CITEQA_MAX_TEXT_CHARS)" in info.value.reason


def test_huge_sheet_stops_at_the_cell_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sheets, "SHEET_MAX_CELLS", 1000)
    path = make_csv(tmp_path / "wide.csv", [tuple(range(50))] * 100)
    assert failure(path).startswith("sheet too large (over 1,000 cells)")


def test_binary_csv_and_malformed_csv(tmp_path: Path) -> None:
    assert failure(write(tmp_path / "bin.csv", b"\x00\x01\x02" * 100)).startswith("looks binary")
    big_field = '"' + "x" * 200_000 + '"\n'  # over csv's field size limit
    assert failure(write(tmp_path / "field.csv", "a,b\n" + big_field)).startswith("malformed CSV (Error:")


def test_eml_that_is_not_an_email(tmp_path: Path) -> None:
    assert failure(write(tmp_path / "x.eml", "just some words\nand more")).startswith("not an e-mail")
    assert failure(write(tmp_path / "b.eml", b"\x00\xff" * 500)).startswith("not an e-mail")
