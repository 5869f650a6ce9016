"""ingest.loaders on real files made here: every format, and every bad input ends as one clean FileError."""

from __future__ import annotations

import hashlib
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from ingest import loaders
from ingest.loaders import (
    SUPPORTED_SUFFIXES,
    common,
    html,
    iter_input_files,
    iter_text,
    load_document,
    scan_text_file,
    walk,
)
from rag.errors import FileError

PAGES = [
    "Vostok exercises began on the first of September. China sent more than two thousand troops.",
    "The second page talks about warships. Three ships sailed to the Sea of Japan.",
    "The last page is short.",
]


def failure(path: Path, **kwargs: int) -> str:
    """The one-line reason load_document gives for ``path`` (and that it names the path)."""
    with pytest.raises(FileError) as info:
        load_document(path, **kwargs)
    assert str(info.value).startswith(str(path))
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    return info.value.reason


def make_pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.add_heading("Quarterly report", level=1)
    d.add_paragraph("Sales grew in the north.")
    table = d.add_table(rows=2, cols=2)
    for r, row in enumerate([("Region", "Growth"), ("North", "12%")]):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    d.add_paragraph("The south was flat.")
    d.save(str(path))
    return path


def write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8", newline="")
    else:
        path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------------ formats


def test_txt_is_the_file_itself(tmp_path: Path) -> None:
    body = "First line.\nSecond line with ümlauts and “quotes”.\n"
    path = write(tmp_path / "notes.txt", body)
    doc = load_document(path)
    assert doc.text == body
    assert doc.source == str(path.resolve())
    assert doc.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert doc.pages == () and doc.mime == "text/plain"


def test_crlf_becomes_lf_and_bom_is_dropped(tmp_path: Path) -> None:
    path = write(tmp_path / "win.txt", b"\xef\xbb\xbfOne.\r\nTwo.\r\n")
    assert load_document(path).text == "One.\nTwo.\n"


@pytest.mark.parametrize("suffix", [".md", ".markdown"])
def test_markdown_is_kept_verbatim(tmp_path: Path, suffix: str) -> None:
    body = "# Title\n\nSome *emphasis* and a [link](http://x).\n\n- item one\n- item two\n"
    doc = load_document(write(tmp_path / f"readme{suffix}", body))
    assert doc.text == body and doc.mime == "text/markdown"


def test_html_drops_scripts_and_keeps_blocks(tmp_path: Path) -> None:
    html = """<!DOCTYPE html><html><head><title>The  Title</title>
    <style>body { color: red }</style><script>var secret = "SCRIPT_TEXT";</script></head>
    <body><noscript>NOSCRIPT_TEXT</noscript><template>TEMPLATE_TEXT</template>
    <h1>Heading</h1><p>First   paragraph with <b>bo</b>ld and <a href="#">a link</a>.</p>
    <div>Line one<br>Line two</div><ul><li>item A</li><li>item B</li></ul>
    <table><tr><th>Name</th><th>Age</th></tr><tr><td>Alice</td><td>30</td></tr></table>
    <script>alert("MORE_SCRIPT")</script><!-- a comment --></body></html>"""
    doc = load_document(write(tmp_path / "page.html", html))
    for hidden in ("SCRIPT_TEXT", "MORE_SCRIPT", "color: red", "NOSCRIPT_TEXT", "TEMPLATE_TEXT", "a comment"):
        assert hidden not in doc.text
    assert doc.text.split("\n\n") == [
        "The Title",
        "Heading",
        "First paragraph with bold and a link.",
        "Line one",
        "Line two",
        "item A",
        "item B",
        "Name | Age",
        "Alice | 30",
    ]
    assert doc.mime == "text/html"


def test_htm_without_title_or_body(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path / "frag.htm", "<p>Just a fragment.</p>"))
    assert doc.text == "Just a fragment."


def test_deeply_nested_html_is_handled(tmp_path: Path) -> None:
    html = "<html><body>" + "<div>" * 5000 + "deep text" + "</div>" * 5000 + "</body></html>"
    path = write(tmp_path / "deep.html", html)
    try:
        doc = load_document(path)
    except FileError as exc:  # a clean refusal is acceptable too
        assert "nested" in exc.reason
    else:
        assert doc.text == "deep text"


def test_pdf_pages_slice_back(tmp_path: Path) -> None:
    doc = load_document(make_pdf(tmp_path / "report.pdf", PAGES))
    assert [p.page for p in doc.pages] == [1, 2, 3]
    assert doc.mime == "application/pdf"
    for span, expected in zip(doc.pages, PAGES, strict=True):
        assert " ".join(doc.text[span.start : span.end].split()) == expected
    # pages are joined by a blank line and cover the text with nothing skipped
    assert doc.pages[0].start == 0 and doc.pages[-1].end == len(doc.text)
    for a, b in zip(doc.pages, doc.pages[1:], strict=False):
        assert doc.text[a.end : b.start] == "\n\n"
    assert doc.page_at(doc.text.index("warships")) == 2


def test_pdf_with_an_empty_page_keeps_numbering(tmp_path: Path) -> None:
    doc = load_document(make_pdf(tmp_path / "gap.pdf", ["Page one text.", "", "Page three text."]))
    assert [(p.page, doc.text[p.start : p.end]) for p in doc.pages] == [
        (1, "Page one text."),
        (2, ""),
        (3, "Page three text."),
    ]


def test_pdf_with_one_broken_page_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pypdf import PageObject

    real = PageObject.extract_text
    calls = iter(range(100))

    def flaky(self: PageObject, *args: object, **kwargs: object) -> str:
        if next(calls) == 1:
            raise KeyError("/Contents")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PageObject, "extract_text", flaky)
    doc = load_document(make_pdf(tmp_path / "flaky.pdf", PAGES))
    assert [doc.text[p.start : p.end] != "" for p in doc.pages] == [True, False, True]


def test_docx_paragraphs_and_table_in_order(tmp_path: Path) -> None:
    doc = load_document(make_docx(tmp_path / "report.docx"))
    assert doc.text.split("\n\n") == [
        "Quarterly report",
        "Sales grew in the north.",
        "Region | Growth",
        "North | 12%",
        "The south was flat.",
    ]
    assert doc.mime.endswith("wordprocessingml.document")


def test_uppercase_suffix(tmp_path: Path) -> None:
    assert load_document(write(tmp_path / "LOUD.TXT", "Hello.")).text == "Hello."


# ----------------------------------------------------------------------------------------------- encodings


def test_latin1_text_is_decoded(tmp_path: Path) -> None:
    body = "Café crème à la française, naïve façade. Straße."
    doc = load_document(write(tmp_path / "legacy.txt", body.encode("latin-1")))
    assert doc.text == body


def test_short_latin1_text_is_decoded(tmp_path: Path) -> None:
    assert load_document(write(tmp_path / "short.txt", "Été à Noël".encode("latin-1"))).text == "Été à Noël"


def test_cp1252_smart_quotes(tmp_path: Path) -> None:
    body = "He said \u201chello\u201d \u2013 and left\u2026"
    assert load_document(write(tmp_path / "win.txt", body.encode("cp1252"))).text == body


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(tmp_path: Path, encoding: str) -> None:
    body = "Unicode text: Ελληνικά, русский, 中文.\n"
    raw = body.encode(encoding)
    if encoding == "utf-16-be":
        raw = b"\xfe\xff" + raw
    assert load_document(write(tmp_path / "wide.txt", raw)).text == body


def test_html_in_utf16(tmp_path: Path) -> None:
    raw = "<html><body><p>Wide HTML.</p></body></html>".encode("utf-16")
    assert load_document(write(tmp_path / "wide.html", raw)).text == "Wide HTML."


def test_html_meta_charset_is_honoured(tmp_path: Path) -> None:
    html = (
        '<html><head><meta charset="shift_jis"><title>日本語</title></head><body><p>こんにちは世界。</p></body></html>'
    )
    doc = load_document(write(tmp_path / "ja.html", html.encode("shift_jis")))
    assert doc.text == "日本語\n\nこんにちは世界。"


def test_html_meta_charset_loses_to_valid_utf8(tmp_path: Path) -> None:
    html = '<meta http-equiv="Content-Type" content="text/html; charset=koi8-r"><p>Naïve café.</p>'
    assert load_document(write(tmp_path / "mislabelled.html", html)).text == "Naïve café."


# ----------------------------------------------------------------------------------------------- bad inputs


def test_missing_file(tmp_path: Path) -> None:
    assert failure(tmp_path / "nope.txt") == "no such file"


def test_folder_is_not_a_file(tmp_path: Path) -> None:
    (tmp_path / "dir.txt").mkdir()
    assert failure(tmp_path / "dir.txt") == "not a regular file"


@pytest.mark.parametrize("body", [b"", b"   \n\t\r\n  "])
def test_empty_and_whitespace_only(tmp_path: Path, body: bytes) -> None:
    assert "no text" in failure(write(tmp_path / "blank.txt", body))


@pytest.mark.parametrize("name", ["image.gif", "archive.tar.gz", "Makefile", "old.doc"])
def test_unknown_suffix(tmp_path: Path, name: str) -> None:
    reason = failure(write(tmp_path / name, "text"))
    assert reason.startswith("unsupported type ") and "supported: .txt .md" in reason


def test_too_big(tmp_path: Path) -> None:
    reason = failure(write(tmp_path / "big.txt", "x" * 5000), max_bytes=1000)
    assert reason == "file is 4.9 KB, over the 1000 bytes limit; raise --max-file-mb"


def test_size_message_in_megabytes() -> None:
    assert common._fmt_size(250 * 2**20) == "250 MB"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4,
        b"text then a NUL \x00 byte",
        bytes([1, 2, 3, 4, 5, 6, 7, 8, 14, 15, 16]) * 100,
    ],
)
def test_binary_with_txt_suffix(tmp_path: Path, raw: bytes) -> None:
    assert "looks binary" in failure(write(tmp_path / "fake.txt", raw))


def test_binary_after_the_sniffed_prefix(tmp_path: Path) -> None:
    raw = b"a" * (1 << 17) + b"\x00\x00\x00"
    assert "looks binary" in failure(write(tmp_path / "late.txt", raw))


def test_undecodable_legacy_encoding(tmp_path: Path) -> None:
    raw = ("Καλημέρα κόσμε, αυτό είναι ελληνικό κείμενο. " * 20).encode("iso-8859-7")
    assert "undecodable" in failure(write(tmp_path / "greek.txt", raw))


def test_bad_bytes_after_a_bom(tmp_path: Path) -> None:
    assert "utf-8-sig" in failure(write(tmp_path / "bad.txt", b"\xef\xbb\xbfok \xff\xfe\xfd bad"))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "secret.txt", "hidden")
    path.chmod(0)
    try:
        assert "permission denied" in failure(path)
    finally:
        path.chmod(0o644)


def test_unreadable_file_via_os_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What root cannot see: a file that stat() accepts but open() refuses (also for the streamed reader)."""
    path = write(tmp_path / "secret.txt", "hidden")

    def deny(self: Path, *args: object, **kwargs: object) -> object:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "open", deny)
    assert failure(path) == "permission denied: make it readable (chmod +r)"
    with pytest.raises(FileError, match="permission denied"):
        scan_text_file(path, 2**20)


def test_truncated_pdf(tmp_path: Path) -> None:
    good = make_pdf(tmp_path / "good.pdf", PAGES).read_bytes()
    path = write(tmp_path / "cut.pdf", good[: len(good) // 3])
    assert failure(path).startswith("corrupt PDF")


def test_garbage_pdf(tmp_path: Path) -> None:
    assert failure(write(tmp_path / "junk.pdf", b"this is not a PDF at all")).startswith("corrupt PDF")


def test_encrypted_pdf(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(make_pdf(tmp_path / "plain.pdf", PAGES)).pages:
        writer.add_page(page)
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="RC4-128")
    path = tmp_path / "locked.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    assert failure(path).startswith("encrypted PDF: decrypt it first (qpdf --decrypt")


def test_pdf_locked_only_against_editing_is_read(tmp_path: Path) -> None:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(make_pdf(tmp_path / "plain.pdf", PAGES)).pages:
        writer.add_page(page)
    writer.encrypt(user_password="", owner_password="owner", algorithm="RC4-128")
    path = tmp_path / "owner-only.pdf"
    with path.open("wb") as fh:
        writer.write(fh)
    assert "warships" in load_document(path).text


def test_pdf_without_text_layer(tmp_path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60, style="F")
    path = tmp_path / "scan.pdf"
    pdf.output(str(path))
    assert failure(path) == "PDF has no text layer (scanned?): run OCR first (e.g. ocrmypdf)"


def test_docx_that_is_not_a_zip(tmp_path: Path) -> None:
    reason = failure(write(tmp_path / "fake.docx", "plain text pretending to be Word"))
    assert reason.startswith("corrupt .docx (not a zip archive")


def test_zip_that_is_not_a_word_document(tmp_path: Path) -> None:
    path = tmp_path / "other.docx"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    assert "no word/document.xml" in failure(path)


def test_truncated_docx(tmp_path: Path) -> None:
    raw = make_docx(tmp_path / "good.docx").read_bytes()
    assert failure(write(tmp_path / "cut.docx", raw[: len(raw) // 2])).startswith("corrupt .docx")


def test_docx_zip_bomb(tmp_path: Path) -> None:
    path = tmp_path / "bomb.docx"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b"\x00" * (20 * 2**20))  # 20 MB of zeros packs to ~20 KB
    assert path.stat().st_size < 100_000
    assert failure(path).startswith("suspicious .docx (inflates to 20 MB, zip bomb?)")


def test_parser_crash_becomes_file_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(html: str) -> str:
        raise RuntimeError("parser exploded\nwith two lines")

    monkeypatch.setattr(html, "_html_to_text", boom)
    assert (
        failure(write(tmp_path / "x.html", "<p>x</p>"))
        == "cannot extract text (RuntimeError: parser exploded with two lines)"
    )


# ---------------------------------------------------------------------------------------- iter_input_files


def make_tree(root: Path) -> None:
    for sub in ("sub/deeper", ".git"):
        (root / sub).mkdir(parents=True)
    write(root / "b.txt", "Bee.")
    write(root / "a.md", "# A")
    write(root / "sub" / "c.html", "<p>C</p>")
    write(root / "sub" / "deeper" / "d.pdf", b"%PDF")
    write(root / "sub" / "image.gif", b"\x89PNG")
    write(root / ".hidden.txt", "skip me")
    write(root / ".git" / "config.txt", "skip me too")
    write(root / "README", "no extension")


def test_folder_walk_is_sorted_recursive_and_reports_bad_files(tmp_path: Path) -> None:
    make_tree(tmp_path)
    files, errors = iter_input_files([tmp_path])
    assert files == [(tmp_path / p).resolve() for p in ("a.md", "b.txt", "sub/c.html", "sub/deeper/d.pdf")]
    assert all(f.is_absolute() for f in files)
    reasons = {Path(e.path).name: e.reason for e in errors}
    assert set(reasons) == {"README", "image.gif"}
    assert reasons["image.gif"].startswith("unsupported type .gif")
    assert reasons["README"].startswith("unsupported type (no extension)")


def test_missing_paths_and_duplicates(tmp_path: Path) -> None:
    make_tree(tmp_path)
    files, errors = iter_input_files([tmp_path / "b.txt", tmp_path, tmp_path / "gone.txt", tmp_path / "sub"])
    assert files.count((tmp_path / "b.txt").resolve()) == 1
    assert len(files) == len(set(files)) == 4
    assert [e.reason for e in errors if e.path.endswith("gone.txt")] == ["no such file or folder"]


def test_symlink_loop_terminates(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    write(root / "a" / "b" / "doc.txt", "Text.")
    (root / "a" / "b" / "back").symlink_to(root, target_is_directory=True)
    (root / "a" / "self").symlink_to(root / "a", target_is_directory=True)
    (root / "dangling.txt").symlink_to(root / "nothing-here.txt")
    files, errors = iter_input_files([root])
    assert files == [(root / "a" / "b" / "doc.txt").resolve()]
    assert [(Path(e.path).name, e.reason) for e in errors] == [("dangling.txt", "broken symbolic link")]


def test_symlinked_file_is_followed_and_deduped(tmp_path: Path) -> None:
    real = write(tmp_path / "real.txt", "Real.")
    (tmp_path / "link.txt").symlink_to(real)
    files, errors = iter_input_files([tmp_path])
    assert files == [real.resolve()] and errors == []


def test_unreadable_folder_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path)
    real_scandir: Callable[[Path], list[os.DirEntry[str]]] = walk._scandir

    def scandir(d: Path) -> list[os.DirEntry[str]]:
        if d.name == "sub":
            raise PermissionError(13, "Permission denied")
        return real_scandir(d)

    monkeypatch.setattr(walk, "_scandir", scandir)
    files, errors = iter_input_files([tmp_path])
    assert [f.name for f in files] == ["a.md", "b.txt"]
    assert [e.reason for e in errors if e.path.endswith("sub")] == ["cannot read folder (Permission denied)"]


def test_mixed_folder_end_to_end(tmp_path: Path) -> None:
    """The ingest loop: walk a folder of good and bad files, load each, collect one reason per failure."""
    docs_dir = tmp_path / "docs"
    docs_dir.mkdir()
    make_pdf(docs_dir / "good.pdf", PAGES)
    make_docx(docs_dir / "good.docx")
    write(docs_dir / "good.txt", "Plain text.")
    write(docs_dir / "good.html", "<p>Web page.</p>")
    write(docs_dir / "empty.md", "")
    write(docs_dir / "binary.txt", b"\x00\x01\x02\x03")
    write(docs_dir / "broken.pdf", b"%PDF-1.7 broken")
    write(docs_dir / "fake.docx", b"not a zip")
    write(docs_dir / "photo.jpg", b"\xff\xd8\xff")
    files, errors = iter_input_files([docs_dir])
    loaded = []
    for path in files:
        try:
            loaded.append(load_document(path))
        except FileError as exc:
            errors.append(exc)
    assert sorted(Path(d.source).name for d in loaded) == ["good.docx", "good.html", "good.pdf", "good.txt"]
    assert sorted(Path(e.path).name for e in errors) == [
        "binary.txt",
        "broken.pdf",
        "empty.md",
        "fake.docx",
        "photo.jpg",
    ]
    assert all(e.reason and "\n" not in e.reason for e in errors)


def test_supported_suffixes() -> None:
    assert SUPPORTED_SUFFIXES == (
        ".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".pptx", ".xlsx", ".csv", ".epub", ".eml",
        ".png", ".jpg", ".jpeg", ".tiff", ".tif", ".webp",
    )


def test_content_hash_matches_streamed_hash(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "h.pdf", PAGES)
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(4096), b""):
            h.update(block)
    assert load_document(path).content_hash == h.hexdigest()


def test_unusual_file_name(tmp_path: Path) -> None:
    path = write(tmp_path / "name with spaces ü.txt", "Unicode name.")
    assert load_document(path).source == str(path.resolve())


# ------------------------------------------------------------------------------------------ streamed text


def streamed(path: Path, window: int) -> str:
    """What the runner reads of a big text file: scan once, then the text in windows."""
    tf = scan_text_file(path, 2**30)
    assert tf.content_hash == hashlib.sha256(path.read_bytes()).hexdigest() and tf.size == path.stat().st_size
    return "".join(iter_text(tf, window))




@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("utf8.txt", "naïve café — 東京 🙂 end\n".encode() * 50),
        ("utf8-bom.md", b"\xef\xbb\xbf" + "# Titel\n\nÄrger über Öl.\n".encode() * 40),
        ("utf16.txt", "Grüße aus Köln.\r\nZweite Zeile 🙂.\r\n".encode("utf-16") * 1),
        ("utf16be.txt", b"\xfe\xff" + "Hello\r\nWorld 東京\r\n".encode("utf-16-be") * 30),
        ("utf32.txt", "Wide text ß 🙂\r\n".encode("utf-32")),
        ("late-latin1.txt", b"Only ASCII here. " * 8000 + "Café crème at the end.".encode("latin-1")),
        ("cp1252-undefined.txt", b"Plain text. " * 20 + b"Odd byte \x81 and \xe9t\xe9."),
        ("crlf.txt", b"one\r\ntwo\r\r\nthree\rfour\r\n" * 30 + b"last\r"),
    ],
)
@pytest.mark.parametrize("window", [1, 2, 3, 7, 4096])
def test_streamed_text_is_the_loaded_text(tmp_path: Path, name: str, raw: bytes, window: int) -> None:
    """Characters and \\r\\n split across windows come out whole; the encoding is chosen for the whole file
    (a Latin-1 byte after the first 100 KB still makes it cp1252), exactly as load_document decodes it."""
    path = write(tmp_path / name, raw)
    assert streamed(path, window) == load_document(path).text


def test_late_invalid_byte_picks_latin1_for_the_whole_file(tmp_path: Path) -> None:
    path = write(tmp_path / "late.txt", b"Ascii text. " * 20000 + "Noël.".encode("latin-1"))
    assert scan_text_file(path, 2**30).encoding == "cp1252"
    assert streamed(path, 65536).endswith("Noël.")


@pytest.mark.parametrize(
    "raw",
    [
        b"Looks like text. " * 10000 + b"\x00\x01\x02 binary tail",  # NUL past the sniffed prefix
        bytes(range(256)) * 100,  # binary from the start
        "Καλημέρα κόσμε, αυτό είναι ελληνικό κείμενο. ".encode("cp1253") * 50,  # not Western
        b"\xff\xfe" + "ok".encode("utf-16-le") + b"\x00\xd8",  # a broken UTF-16 surrogate after the BOM
        b"   \n\t\r\n  " * 1000,  # whitespace only
    ],
)
def test_streamed_errors_are_the_loaded_errors(tmp_path: Path, raw: bytes) -> None:
    path = write(tmp_path / "bad.txt", raw)
    reason = failure(path)
    with pytest.raises(FileError) as info:
        streamed(path, 1000)
    assert info.value.reason == reason and info.value.path == str(path)


def test_file_changed_between_scan_and_read(tmp_path: Path) -> None:
    path = write(tmp_path / "moving.txt", "First version of the text.\n" * 100)
    tf = scan_text_file(path, 2**30)
    write(path, "Second version of the text!\n" * 100)
    with pytest.raises(FileError, match="changed while being read"):
        "".join(iter_text(tf, 512))


def test_scan_stops_at_the_limit_when_the_file_grew(tmp_path: Path) -> None:
    path = write(tmp_path / "growing.txt", "x " * 5000)
    with pytest.raises(FileError, match="over the 4.0 KB limit; raise --max-file-mb"):
        scan_text_file(path, 4096)


def test_file_that_grew_past_the_limit_after_its_stat(tmp_path: Path) -> None:
    path = write(tmp_path / "log.txt", "line\n" * 100)
    assert loaders.check_file(path, 1000) == 500
    write(path, "line\n" * 300)  # a writer appends before the read
    with pytest.raises(FileError, match=r"^.*: file is over the 1000 bytes limit; raise --max-file-mb$"):
        loaders.read_file(path, 1000)
    assert loaders.read_file(path, 2000) == b"line\n" * 300
