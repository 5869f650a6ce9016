"""Real files of the formats of issue 17, built here with the libraries that write them (python-pptx, openpyxl,
ebooklib, the stdlib's email), shared by the unit and integration tests."""

from __future__ import annotations

import zipfile
from email.message import EmailMessage
from pathlib import Path

SLIDES = [
    ("Harbour expansion", ["The new quay opens in March 2027.", "It adds 400 metres of berth."],
     "Mention that the dredging contract went to Van Oord."),
    ("Budget", ["Total cost: 38 million euros."], ""),
    ("Questions", [], "Thank the port authority."),
]
SHEET_ROWS = [("Region", "Quarter", "Revenue"), ("North", "Q1", 1200), ("South", "Q1", 950.5), ("East", "Q2", 3100)]
CHAPTERS = [
    ("Chapter 1", "The lighthouse keeper counted 117 ships in the winter of 1903."),
    ("Chapter 2", "A storm in February destroyed the old pier at Kirkwall."),
]


def make_pptx(path: Path, slides: list[tuple[str, list[str], str]] = SLIDES) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    for title, bullets, notes in slides:
        slide = prs.slides.add_slide(prs.slide_layouts[1])  # title and content
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        for i, b in enumerate(bullets):
            para = body.paragraphs[0] if i == 0 else body.add_paragraph()
            para.text = b
        if title == "Budget":  # a table too
            table = slide.shapes.add_table(2, 2, Inches(1), Inches(4), Inches(4), Inches(1)).table
            for r, row in enumerate([("Item", "Cost"), ("Quay", "30 M")]):
                for c, v in enumerate(row):
                    table.cell(r, c).text = v
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    prs.save(str(path))
    return path


def make_xlsx(path: Path, sheets: dict[str, list[tuple[object, ...]]] | None = None) -> Path:
    from openpyxl import Workbook

    sheets = sheets if sheets is not None else {"Sales": SHEET_ROWS, "Staff": [("Name", "Role"), ("Ada", "Pilot")]}
    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets.items():
        ws = wb.create_sheet(title)
        for row in rows:
            ws.append(list(row))
    wb.save(str(path))
    return path


def make_csv(path: Path, rows: list[tuple[object, ...]] = SHEET_ROWS, delimiter: str = ",") -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, delimiter=delimiter).writerows(rows)
    return path


def make_epub(path: Path, chapters: list[tuple[str, str]] = CHAPTERS) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("citeqa-test-book")
    book.set_title("The Northern Isles")
    book.set_language("en")
    items = []
    for i, (title, text) in enumerate(chapters, start=1):
        ch = epub.EpubHtml(title=title, file_name=f"chap_{i}.xhtml", lang="en")
        ch.content = f"<html><body><h1>{title}</h1><p>{text}</p></body></html>"
        book.add_item(ch)
        items.append(ch)
    book.toc = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = items
    epub.write_epub(str(path), book)
    return path


def make_eml(path: Path, *, attachment: str | None = "Invoice 4471: 3 pallets of cement, 812 euros.") -> Path:
    msg = EmailMessage()
    msg["From"] = "Ada Lovelace <ada@example.org>"
    msg["To"] = "harbour-board@example.org"
    msg["Date"] = "Tue, 03 Mar 2026 10:15:00 +0000"
    msg["Subject"] = "Quay delivery schedule"
    msg.set_content("Hello all,\n\nThe cement for the new quay arrives on 14 April.\n\nAda\n")
    msg.add_alternative("<p>Hello all,</p><p>The cement for the new quay arrives on <b>14 April</b>.</p>",
                        subtype="html")
    if attachment is not None:
        msg.add_attachment(attachment, subtype="plain", filename="invoice.txt")
        msg.add_attachment(b"\x89PNG\r\n\x1a\n", maintype="image", subtype="png", filename="logo.png")
    path.write_bytes(bytes(msg))
    return path


def make_zip_bomb(path: Path, member: str) -> Path:
    """A valid-looking archive of ``path``'s kind whose ``member`` inflates from ~20 KB to 20 MB."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr(member, b"\x00" * (20 * 2**20))
    return path


def text_pdf(path: Path, pages: list[str], size: int = 12) -> Path:
    """A PDF with a text layer (fpdf2, Helvetica)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=size)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, size * 0.6, text)
    pdf.output(str(path))
    return path


def render_pages(pdf_path: Path, dpi: int = 150) -> list:  # -> list[PIL.Image.Image]
    """Each page of ``pdf_path`` as an image (pypdfium2), what a scanner would give."""
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument(str(pdf_path))
    try:
        return [pdf[i].render(scale=dpi / 72).to_pil().convert("L") for i in range(len(pdf))]
    finally:
        pdf.close()


def image_pdf(path: Path, images: list, text_pages: dict[int, str] | None = None) -> Path:
    """A PDF whose pages are only pictures (no text layer), with a real text page at each index of
    ``text_pages`` (a scan mixed with born-digital pages)."""
    from fpdf import FPDF

    text_pages = text_pages or {}
    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    n = len(images) + len(text_pages)
    it = iter(images)
    for i in range(n):
        pdf.add_page()
        if i in text_pages:
            pdf.multi_cell(0, 7, text_pages[i])
        else:
            pdf.image(next(it), x=0, y=0, w=210, h=297)
    pdf.output(str(path))
    return path


def text_png(path: Path, text: str, size: int = 32) -> Path:
    """A PNG of ``text`` (Pillow's own font, dark on white), line by line."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=size)
    lines = text.split("\n")
    img = Image.new("L", (60 + int(size * 0.62 * max(map(len, lines))), 60 + int(size * 1.5) * len(lines)), 255)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * int(size * 1.5)), line, fill=0, font=font)
    img.save(path)
    return path
