"""The `citeqa` command as a user runs it: a real process, real model, real embedded Chroma."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CITEQA = [sys.executable, "-m", "ui.cli"]


def run(*args: str, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([*CITEQA, *args], capture_output=True, text=True, timeout=timeout, env=e)


def test_ingest_and_ask_vostok_with_the_default_embedder(vostok_dir: Path) -> None:
    """The issue's own example, with the default (sentence-transformers) embedder."""
    r = run("ingest", str(vostok_dir))
    assert r.returncode == 0, r.stderr
    assert "1 added" in r.stdout
    r = run("ask", "How many troops did China send?", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert set(out) >= {"answer", "short_answer", "abstained", "citations", "timings"}
    assert out["short_answer"] == "more than 2,000" and out["abstained"] is False
    c = out["citations"][0]
    assert set(c) >= {"n", "source", "page", "start", "end", "text", "score"}
    text = (vostok_dir / "vostok-2022.txt").read_text(encoding="utf-8")
    assert Path(c["source"]).name == "vostok-2022.txt"
    assert text[c["start"] : c["end"]] == c["text"] and "more than 2,000" in c["text"]

    r = run("ask", "What is the population of Paris?")
    assert r.returncode == 0
    assert "could not find" in r.stdout.lower()

    r = run("ask", "How many troops did China send?")
    assert "Sources:" in r.stdout and "[1] " in r.stdout and "vostok-2022.txt" in r.stdout

    r = run("sources", "--json")
    rows = json.loads(r.stdout)
    assert len(rows) == 1 and rows[0]["chunks"] > 0 and len(rows[0]["content_hash"]) == 64


def test_failed_files_exit_nonzero_with_one_line_each(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ok.md").write_text("# Tides\n\nHigh tide at Eastport is at 06:12 today.", encoding="utf-8")
    (docs / "empty.txt").write_text("", encoding="utf-8")
    (docs / "bad.pdf").write_bytes(b"not a pdf at all")
    r = run("ingest", str(docs), env={"CITEQA_EMBEDDER": "minilm-int8"})
    assert r.returncode == 1
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("citeqa: skipped")]
    assert len(lines) == 2 and any("empty.txt" in ln for ln in lines) and any("bad.pdf" in ln for ln in lines)
    assert "Traceback" not in r.stderr
    assert "1 added" in r.stdout and "2 failed" in r.stdout


def test_forget_and_sources(tmp_path: Path) -> None:
    env = {"CITEQA_EMBEDDER": "minilm-int8", "CITEQA_COLLECTION": "notes"}
    f = tmp_path / "n.txt"
    f.write_text("The garden has 14 beehives.", encoding="utf-8")
    assert run("ingest", str(f), env=env).returncode == 0
    r = run("forget", str(f), env=env)
    assert r.returncode == 0 and "removed" in r.stdout
    r = run("forget", str(f), env=env)
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "not in collection" in r.stderr
    assert "empty" in run("sources", env=env).stdout


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"CITEQA_K": "0"}, "CITEQA_K"),
        ({"CITEQA_COLLECTION": "../etc"}, "CITEQA_COLLECTION"),
        ({"CITEQA_CHROMA": "nonsense"}, "CITEQA_CHROMA"),
        ({"CITEQA_EMBEDDER": "bert-huge"}, "CITEQA_EMBEDDER"),
        ({"CITEQA_LLM": "gpt5"}, "CITEQA_LLM"),
    ],
)
def test_bad_settings_fail_with_one_line(env: dict[str, str], needle: str) -> None:
    r = run("ask", "anything?", env=env, timeout=60)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and needle in r.stderr and "Traceback" not in r.stderr


def test_unreachable_chroma_server_is_one_line() -> None:
    r = run("ask", "anything?", env={"CITEQA_CHROMA": "127.0.0.1:9", "CITEQA_EMBEDDER": "minilm-int8"}, timeout=120)
    assert r.returncode != 0
    assert r.stderr.count("\n") == 1 and "127.0.0.1:9" in r.stderr and "chroma run" in r.stderr


def test_bad_question_is_one_line(tmp_path: Path) -> None:
    r = run("ask", "   ", env={"CITEQA_EMBEDDER": "minilm-int8"}, timeout=60)
    assert r.returncode == 2 and "question is empty" in r.stderr and r.stderr.count("\n") == 1


def test_help_is_fast_and_loads_no_model() -> None:
    heavy = "('torch', 'chromadb', 'sentence_transformers', 'gradio', 'onnxruntime')"
    code = f"import sys, ui.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "[]", "importing the CLI must not import heavy libraries"


def test_chat_follow_up_uses_the_conversation(vostok_dir: Path) -> None:
    env = {"CITEQA_EMBEDDER": "minilm-int8", "CITEQA_COLLECTION": "chat"}
    assert run("ingest", str(vostok_dir), env=env).returncode == 0
    e = dict(os.environ, **env)
    r = subprocess.run([*CITEQA, "chat"], input="How many troops did China send?\nand in 2018?\n/quit\n",
                       capture_output=True, text=True, timeout=300, env=e)
    assert r.returncode == 0, r.stderr
    assert "more than 2,000" in r.stdout
    second = r.stdout.split("more than 2,000", 1)[1]
    assert "3,200" in second or "300,000" in second, r.stdout


def test_per_file_text_limit_flag_skips_a_long_docx_and_keeps_plain_text(tmp_path: Path) -> None:
    """`--max-text-chars` bounds what a document may expand to (a .docx is a zip); a .txt file's text is the file
    itself, bounded by --max-file-mb, so the same limit does not refuse it."""
    docx = pytest.importorskip("docx", reason="python-docx is a core dependency")
    docs = tmp_path / "docs"
    docs.mkdir()
    d = docx.Document()
    d.add_paragraph("The Halden mill employed 340 workers in 2019. " * 20)
    d.save(str(docs / "long.docx"))
    (docs / "notes.txt").write_text("High tide at Eastport is at 06:12 today. " * 20, encoding="utf-8")
    r = run("ingest", str(docs), "--max-text-chars", "200", env={"CITEQA_EMBEDDER": "minilm-int8"})
    assert r.returncode == 1
    skipped = [ln for ln in r.stderr.splitlines() if ln.startswith("citeqa: skipped")]
    assert len(skipped) == 1 and "long.docx" in skipped[0] and "CITEQA_MAX_TEXT_CHARS" in skipped[0], r.stderr
    assert "1 added" in r.stdout and "1 failed" in r.stdout
