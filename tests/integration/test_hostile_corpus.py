"""A folder of broken and hostile files next to good ones, ingested by the real `citeqa` command: every bad file
gets exactly one line naming it and saying why, nothing crashes, everything else is ingested and answers with a
citation that slices the file, and a second run adds and duplicates nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from ingest.loaders.ocr import ocr_available

pytestmark = pytest.mark.integration

CITEQA = [sys.executable, "-m", "ui.cli"]
LONG_LINE_FACT = "The quarry at Eastfield produced 9,340 tonnes of granite in 1887."


def citeqa(*args: str, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*CITEQA, *args], env=env, capture_output=True, text=True, timeout=timeout)


def make_pdf(path: Path, pages: list[str]) -> Path:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def make_scanned_pdf(path: Path) -> Path:
    """A page that is only a picture of text (what a scanner makes): no text layer; read by OCR (issue 17)."""
    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (1200, 200), "white")
    font = ImageFont.load_default(size=40)
    ImageDraw.Draw(img).text((20, 70), "The scanned invoice totals 512 euros.", fill="black", font=font)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(img, x=10, y=10, w=180)
    pdf.output(str(path))
    return path


def make_encrypted_pdf(path: Path, tmp: Path) -> Path:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for page in PdfReader(make_pdf(tmp / "to-encrypt.pdf", ["Secret minutes of the harbour board."])).pages:
        writer.add_page(page)
    writer.encrypt(user_password="s3cret", owner_password="owner", algorithm="RC4-128")
    with path.open("wb") as fh:
        writer.write(fh)
    return path


def make_docx(path: Path, paragraphs: list[str]) -> Path:
    import docx

    d = docx.Document()
    for p in paragraphs:
        d.add_paragraph(p)
    d.save(str(path))
    return path


def make_zip_bomb_docx(path: Path) -> Path:
    """A valid-looking .docx whose document.xml inflates from ~100 KB to 100 MB."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", b"<w:document>" + b" " * (100 * 2**20) + b"</w:document>")
    assert path.stat().st_size < 200_000
    return path


def build(folder: Path, tmp: Path) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """Write the corpus. Returns {bad file: expected start of its reason} and
    {handled or good file: (question, expected short answer)}."""
    folder.mkdir()
    scratch = tmp / "scratch"
    scratch.mkdir()
    # the good documents, one per format
    make_pdf(folder / "report.pdf", ["Annual report.", "The ferry company carried 61,200 passengers in 2023."])
    make_docx(folder / "minutes.docx", ["Board minutes.", "The board approved 14 new lifeboats in March."])
    (folder / "guide.md").write_text("# Guide\n\nThe museum opens at 09:30 on weekdays.\n", encoding="utf-8")
    (folder / "page.html").write_text(
        "<html><head><title>Harbour</title><script>alert(1)</script></head>"
        "<body><p>The harbour crane lifts 45 tonnes.</p></body></html>", encoding="utf-8")
    # handled: legacy and wide encodings, long lines, deep nesting
    (folder / "latin1.txt").write_bytes("The café in Montréal serves 212 crêpes every Sunday.\n".encode("latin-1"))
    (folder / "utf16.txt").write_bytes("The glacier museum in Zürich displays 77 ice cores.\r\n".encode("utf-16"))
    filler = " ".join(f"Wagon {i} carried stone from the pit to the rail yard." for i in range(200))
    (folder / "long-line.txt").write_text(filler + " " + LONG_LINE_FACT + " " + filler, encoding="utf-8")
    with (folder / "padded-line.txt").open("w", encoding="utf-8") as fh:  # one 5 MB line
        fh.write("The signal tower was painted red in 1952." + " \t" * (5 * 2**19) + "The last keeper left in 1989.")
    depth = 20_000
    (folder / "nested.html").write_text(
        "<html><body>" + "<div>" * depth + "<p>The beacon flashes every 7 seconds.</p>" + "</div>" * depth
        + "</body></html>", encoding="utf-8")
    # a symlink loop (a folder linking to itself) and a file symlink pointing at itself
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    (folder / "self-link.txt").symlink_to(folder / "self-link.txt")
    # the bad ones
    good_pdf = make_pdf(scratch / "whole.pdf", ["The truncated copy said 3 ships sank."] * 3).read_bytes()
    (folder / "truncated.pdf").write_bytes(good_pdf[: len(good_pdf) // 3])
    make_encrypted_pdf(folder / "encrypted.pdf", scratch)
    make_scanned_pdf(folder / "scanned.pdf")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "blank.md").write_text("  \n\t\n   \r\n\n", encoding="utf-8")
    (folder / "program.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 64)
    (folder / "not-a-zip.docx").write_text("plain text pretending to be Word", encoding="utf-8")
    make_zip_bomb_docx(folder / "bomb.docx")
    (folder / "notes.xyz").write_text("an unknown format", encoding="utf-8")
    bad = {
        "truncated.pdf": "corrupt PDF (",
        "encrypted.pdf": "encrypted PDF: decrypt it first (qpdf --decrypt in.pdf out.pdf)",
        "empty.txt": "empty file (no text)",
        "blank.md": "no text (empty or whitespace only)",
        "program.txt": "looks binary, not text: convert it to a text format first",
        "not-a-zip.docx": "corrupt .docx (not a zip archive",
        "bomb.docx": "suspicious .docx (inflates to 100 MB, zip bomb?): not ingested",
        "notes.xyz": "unsupported type .xyz; supported: .txt .md",
        "self-link.txt": "broken symbolic link",
    }
    good = {
        "report.pdf": ("How many passengers did the ferry company carry in 2023?", "61,200"),
        "latin1.txt": ("How many crêpes does the café in Montréal serve every Sunday?", "212"),
        "utf16.txt": ("How many ice cores does the glacier museum in Zürich display?", "77"),
        "long-line.txt": ("How many tonnes of granite did the quarry at Eastfield produce in 1887?", "9,340"),
        "padded-line.txt": ("When did the last keeper leave?", "1989"),
        "nested.html": ("How often does the beacon flash?", "7 seconds"),
        "minutes.docx": ("How many lifeboats did the board approve?", "14"),
        "scanned.pdf": ("How much does the scanned invoice total?", "512"),
        "guide.md": ("When does the museum open on weekdays?", "09:30"),
        "page.html": ("How many tonnes does the harbour crane lift?", "45"),
    }
    return bad, good


def skipped_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("citeqa: skipped ")]


def test_hostile_folder_every_fault_one_line_everything_else_ingested(tmp_path: Path) -> None:
    folder = tmp_path / "hostile"
    bad, good = build(folder, tmp_path)
    if not ocr_available():  # the scan is then one line saying what to install
        bad["scanned.pdf"] = "OCR needs Tesseract, which is not installed"
        del good["scanned.pdf"]
    env = dict(os.environ, CITEQA_EMBEDDER="minilm-int8", CITEQA_COLLECTION="hostile")

    r = citeqa("ingest", str(folder), "--data-dir", str(tmp_path / "data"), "--json", env=env)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    lines = skipped_lines(r.stderr)
    assert lines == r.stderr.splitlines(), "nothing but the one line per bad file on stderr"
    for name, reason in bad.items():
        mine = [ln for ln in lines if ln.startswith(f"citeqa: skipped {folder / name}: ")]
        assert len(mine) == 1, (name, lines)
        assert mine[0].split(": ", 2)[2].startswith(reason), mine[0]
    assert len(lines) == len(bad)
    report = json.loads(r.stdout)
    assert sorted(Path(p).name for p in report["added"]) == sorted(good)
    assert not report["updated"] and not report["unchanged"]

    for name, (question, expected) in good.items():
        a = citeqa("ask", question, "--json", "--data-dir", str(tmp_path / "data"), env=env)
        assert a.returncode == 0, a.stderr
        out = json.loads(a.stdout)
        assert out["short_answer"] and expected in out["short_answer"], (name, out["answer"])
        c = out["citations"][0]
        assert Path(c["source"]).name == name, (name, c["source"])
        if name.endswith(".txt"):  # plain text: the citation is a slice of the decoded file itself
            raw = (folder / name).read_bytes()
            text = raw.decode("latin-1" if name == "latin1.txt" else "utf-16" if name == "utf16.txt" else "utf-8")
            assert text.replace("\r\n", "\n")[c["start"] : c["end"]] == c["text"]
        assert expected in c["text"]

    sources = json.loads(citeqa("sources", "--json", "--data-dir", str(tmp_path / "data"), env=env).stdout)
    chunks = sum(s["chunks"] for s in sources)
    again = citeqa("ingest", str(folder), "--data-dir", str(tmp_path / "data"), "--json", env=env)
    assert again.returncode == 1 and skipped_lines(again.stderr) == lines
    second = json.loads(again.stdout)
    assert not second["added"] and not second["updated"] and second["chunks"] == 0
    assert sorted(Path(p).name for p in second["unchanged"]) == sorted(good)
    sources = json.loads(citeqa("sources", "--json", "--data-dir", str(tmp_path / "data"), env=env).stdout)
    assert sum(s["chunks"] for s in sources) == chunks and len(sources) == len(good)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file, so an unreadable file cannot be made")
def test_unreadable_file_and_folder_are_one_line_each(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    (folder / "locked-dir").mkdir(parents=True)
    (folder / "locked-dir" / "inside.txt").write_text("Hidden text.", encoding="utf-8")
    (folder / "ok.txt").write_text("The ferry leaves at 06:15.", encoding="utf-8")
    secret = folder / "secret.txt"
    secret.write_text("Secret text.", encoding="utf-8")
    secret.chmod(0)
    (folder / "locked-dir").chmod(0)
    try:
        env = dict(os.environ, CITEQA_EMBEDDER="minilm-int8")
        r = citeqa("ingest", str(folder), "--data-dir", str(tmp_path / "data"), env=env)
    finally:
        (folder / "locked-dir").chmod(0o755)
        secret.chmod(0o644)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = skipped_lines(r.stderr)
    assert sorted(lines) == sorted([
        f"citeqa: skipped {folder / 'locked-dir'}: cannot read folder (Permission denied)",
        f"citeqa: skipped {secret}: permission denied: make it readable (chmod +r)",
    ])
    assert "1 added" in r.stdout
