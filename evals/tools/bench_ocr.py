"""OCR accuracy and speed on pages rendered from known text: the character error rate (CER) and pages per second
of citeqa's OCR path (Tesseract), and of RapidOCR (rapidocr-onnxruntime) when it is installed, for comparison.

    python -m evals.tools.bench_ocr [--pages N] [--dpi D] [--out DIR]

The known text is the prose of ``docs/how-it-works.md`` (Markdown marks dropped), laid out with fpdf2 on A4
pages in 11 pt Helvetica. Each page is rendered at ``--dpi`` (150: an ordinary office scan) into an image-only
PDF, which citeqa then reads exactly as an ingest does (``load_document``: pypdfium2 renders the page at 300 dpi,
Tesseract reads it). The reference of each page is its text layer in the born-digital PDF (pypdf). CER = the
edit distance between reference and OCR text, whitespace runs collapsed to one space, over the reference's
length. Writes ``ocr.json`` under ``--out`` and prints the figures with the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def known_text() -> str:
    md = (ROOT / "docs" / "how-it-works.md").read_text(encoding="utf-8")
    md = re.sub(r"```.*?```", " ", md, flags=re.S)
    md = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", md)  # links -> their words
    md = re.sub(r"[#*`|>_]+", " ", md)
    text = " ".join(md.split())
    return text.encode("latin-1", "ignore").decode("latin-1")  # Helvetica's characters


def edit_distance(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, start=1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        prev = cur
    return prev[-1]


def norm(text: str) -> str:
    return " ".join(text.split())


def cer(ref: str, hyp: str) -> float:
    ref, hyp = norm(ref), norm(hyp)
    return edit_distance(ref, hyp) / max(1, len(ref))


def make_pages(work: Path, n: int, dpi: int) -> tuple[list[str], Path, list[Any]]:
    """The reference text of ``n`` pages, the image-only PDF of them, and the page images."""
    from fpdf import FPDF
    from pypdf import PdfReader

    from tests.format_files import image_pdf, render_pages

    words = known_text().split()
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    per_page = 260
    n = min(n, -(-len(words) // per_page))  # no empty page
    for p in range(n):
        pdf.add_page()
        pdf.multi_cell(0, 6, " ".join(words[p * per_page:(p + 1) * per_page]))
    born = work / "born-digital.pdf"
    pdf.output(str(born))
    refs = [page.extract_text() or "" for page in PdfReader(str(born)).pages]
    images = render_pages(born, dpi=dpi)
    return refs, image_pdf(work / "scan.pdf", images), images


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (Tesseract runs as a child process)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def run_tesseract(scan: Path, n: int) -> tuple[list[str], float, float]:
    from ingest.loaders import load_document

    t0, c0 = time.perf_counter(), cpu_seconds()
    doc = load_document(scan)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    assert len(doc.pages) == n
    return [doc.text[s.start:s.end] for s in doc.pages], seconds, cpu


def run_rapidocr(scan: Path) -> tuple[list[str], float, float] | None:
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return None
    import numpy as np
    import pypdfium2 as pdfium

    engine = RapidOCR()
    t0, c0 = time.perf_counter(), cpu_seconds()
    pdf = pdfium.PdfDocument(str(scan))
    texts = []
    for i in range(len(pdf)):
        img = np.array(pdf[i].render(scale=300 / 72).to_pil().convert("RGB"))
        result, _ = engine(img)
        texts.append("\n".join(line[1] for line in result or []))
    pdf.close()
    return texts, time.perf_counter() - t0, cpu_seconds() - c0


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=4)
    ap.add_argument("--dpi", type=int, default=150, help="resolution of the 'scan'")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        refs, scan, _ = make_pages(Path(tmp), args.pages, args.dpi)
        args.pages = len(refs)
        report: dict[str, Any] = {"pages": args.pages, "scan_dpi": args.dpi, "cpu": cpu_name(),
                                  "cores": os.cpu_count(), "reference_chars": sum(len(norm(r)) for r in refs),
                                  "load_average_before": round(os.getloadavg()[0], 2)}
        engines = {"tesseract": run_tesseract(scan, args.pages), "rapidocr": run_rapidocr(scan)}
        report["sample"] = {name: res[0][0][:160] for name, res in engines.items() if res}
        for name, res in engines.items():
            if res is None:
                report[name] = "not installed"
                continue
            texts, seconds, cpu = res
            errors = sum(edit_distance(norm(r), norm(h)) for r, h in zip(refs, texts, strict=True))
            report[name] = {
                "cer": round(errors / max(1, report["reference_chars"]), 4),
                "cer_per_page": [round(cer(r, h), 4) for r, h in zip(refs, texts, strict=True)],
                "pages_per_second": round(args.pages / seconds, 3),
                "seconds": round(seconds, 2),
                "cpu_seconds_per_page": round(cpu / args.pages, 2),  # what contention does not change
            }
        report["load_average_after"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "ocr.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
