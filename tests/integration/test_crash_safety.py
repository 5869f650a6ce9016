"""Crash-safe ingest: SIGKILL `citeqa ingest` at several points, then re-run it; the collection must end
exactly like a clean ingest (same chunk ids, no duplicates, nothing missing), and in between it must answer."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORDS = (
    "harbour lantern orchard granite ferry meadow copper glacier beacon willow quarry canal signal tower river "
    "market bridge furnace island valley archive compass engine harvest timber ledger summit"
).split()


def make_corpus(folder: Path, files: int = 160, seed: int = 7) -> None:
    rng = random.Random(seed)
    folder.mkdir(parents=True)
    for i in range(files):
        sentences = []
        for j in range(rng.randint(8, 30)):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
            sentences.append(f"Record {i}-{j} notes that the {words} measured {rng.randint(1, 9999)} units.")
        (folder / f"doc{i:03d}.txt").write_text(" ".join(sentences), encoding="utf-8")
    (folder / "anchor.txt").write_text(
        "The lighthouse keeper at Point Ardent logged 4,812 ships in 1911.", encoding="utf-8"
    )


def cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ui.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def state(env: dict[str, str]) -> tuple[list[str], int, int, int]:
    """(sorted chunk ids in Chroma, Chroma count, manifest chunk count, BM25 size) for the collection."""
    code = (
        "import json\n"
        "from rag.settings import load_settings\nfrom ingest.compose import Citeqa\n"
        "qa = Citeqa(load_settings())\nqa.collection.ensure_repaired()\n"
        "ids = sorted(c.id for c in qa.store.iter_chunks())\n"
        "print(json.dumps([ids, qa.store.count(), sum(i.chunks for i in qa.sources()), len(qa.bm25)]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    ids, count, manifest, bm25 = json.loads(r.stdout)
    return ids, count, manifest, bm25


def test_sigkill_during_ingest_then_rerun_matches_clean_ingest(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    make_corpus(docs)
    base = dict(os.environ, CITEQA_EMBEDDER="minilm-int8", CITEQA_DATA_DIR=str(tmp_path / "data"))

    clean_env = dict(base, CITEQA_COLLECTION="clean")
    p = cli(["ingest", str(docs)], clean_env)
    assert p.wait(timeout=600) == 0, p.stderr.read()
    clean_ids, clean_count, _, _ = state(clean_env)
    assert clean_count == len(clean_ids) == len(set(clean_ids)) > 300

    env = dict(base, CITEQA_COLLECTION="crashy")
    killed = 0
    for delay in (2.5, 4.0, 5.5, 7.0, 9.0):
        p = cli(["ingest", str(docs)], env)
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            killed += 1
        p.wait(timeout=60)
        ids, count, manifest_chunks, bm25 = state(env)
        # after the repair that the next user of the collection does: store, manifest and BM25 agree
        assert count == len(ids) == len(set(ids)), "no duplicated chunks after a crash"
        assert manifest_chunks == count == bm25
        assert set(ids) <= set(clean_ids)
    assert killed >= 2, "the ingest finished too fast to be killed; make the corpus bigger"

    p = cli(["ingest", str(docs)], env)
    assert p.wait(timeout=600) == 0, p.stderr.read()
    ids, count, manifest_chunks, bm25 = state(env)
    assert ids == clean_ids and count == clean_count == manifest_chunks == bm25

    r = subprocess.run([sys.executable, "-m", "ui.cli", "ask", "How many ships did the keeper log?", "--json"],
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["short_answer"] and "4,812" in out["short_answer"]
