"""Big text files: they are streamed (read, decoded, chunked, embedded and stored a window at a time), so memory
stays flat whatever their size, and the result is the same collection a whole-file ingest would build.

The 200 MB tests are `slow` (still run by `make test` / `.ci/run`). Embedding runs at a few thousand word pieces
a second here, so no test embeds a big file of prose: the 200 MB ingest is of a file that is mostly blank
lines with a few facts, and the 200 MB of prose goes through the streaming reader and chunker without the model.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest import runner
from ingest.chunking import chunk_document
from ingest.compose import Citeqa
from ingest.loaders import load_document
from ingest.manifest import Manifest
from rag.settings import load_settings

pytestmark = pytest.mark.integration

MB = 10**6
WORDS = (
    "harbour lantern orchard granite ferry meadow copper glacier beacon willow quarry canal signal tower river "
    "market bridge furnace island valley archive compass engine harvest timber ledger summit"
).split()
NEEDLE = "The lighthouse keeper at Point Ardent logged 4,812 ships in 1911."


def prose(n_paragraphs: int, seed: int = 3) -> str:
    """Paragraphs of plain sentences separated by blank lines, ending with one."""
    rng = random.Random(seed)
    paragraphs = []
    for _ in range(n_paragraphs):
        sentences = [
            f"The {rng.choice(WORDS)} near the {rng.choice(WORDS)} {rng.choice(WORDS)} measured "
            f"{rng.randint(1, 9999)} units in {rng.randint(1800, 2024)}."
            for _ in range(rng.randint(2, 9))
        ]
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs) + "\n\n"


def write_repeated(path: Path, size: int, block: bytes, tail: bytes = b"") -> Path:
    """A file of ``size`` bytes: ``block`` repeated (the last copy cut short), then ``tail``. Fast: big writes."""
    body = size - len(tail)
    with path.open("wb") as fh:
        for _ in range(body // len(block)):
            fh.write(block)
        fh.write(block[: body % len(block)])
        fh.write(tail)
    assert path.stat().st_size == size
    return path


@pytest.fixture
def big_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder whose files are deleted after the test (pytest keeps the last runs' tmp_path otherwise)."""
    d = tmp_path / "big"
    d.mkdir()
    yield d
    for p in sorted(tmp_path.rglob("*"), reverse=True):
        if p.is_file() and p.stat().st_size > MB:
            p.unlink()


def cli_with_peak_rss(args: list[str], env: dict[str, str], timeout: int = 900) -> tuple[dict, int]:
    """Run `citeqa ARGS` in a fresh wrapper process; returns its result and the peak RSS of citeqa in MB."""
    wrapper = (
        "import json, resource, subprocess, sys\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024\n"
        "print(json.dumps({'rc': r.returncode, 'stdout': r.stdout, 'stderr': r.stderr, 'peak': peak}))\n"
    )
    out = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "ui.cli", *args],
                         env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    return result, result["peak"]


def small_docs(folder: Path) -> None:
    (folder / "orchard.txt").write_text("The orchard grows 36 varieties of apple on the north slope.", encoding="utf-8")
    (folder / "ferry.md").write_text("# Ferries\n\nThe night ferry to Osk leaves at 23:40 from pier four.\n",
                                     encoding="utf-8")


def cli_env(data: Path) -> dict[str, str]:
    return dict(os.environ, CITEQA_EMBEDDER="minilm-int8", CITEQA_DATA_DIR=str(data))


# ------------------------------------------------------------------------------ streamed ingest, small scale


@pytest.fixture
def qa(embedder) -> Citeqa:
    return Citeqa(load_settings(embedder="minilm-int8", collection="big-files"), embedder=embedder)


def test_streamed_ingest_builds_the_whole_file_collection_and_answers(qa: Citeqa, tmp_path: Path) -> None:
    """A text file bigger than the window goes through the streaming path (windows forced small, so it crosses
    a dozen); the needle sentence straddles a window border. Chunk ids are exactly those of chunking the whole
    file, the stored text is the file, the answer's citation slices the file, and re-ingest adds nothing."""
    window = 2048
    docs = tmp_path / "docs"
    docs.mkdir()
    head = prose(200)[: 5 * window - 30]
    head = head[: head.rindex("\n\n") + 2]  # end on a paragraph break...
    head += "Filler words keep the needle on the border. " * ((5 * window - 30 - len(head)) // 45)
    head += " " * (5 * window - 30 - len(head))
    text = head + NEEDLE + "\n\n" + prose(40, seed=9)
    start = text.index(NEEDLE)
    assert start < 5 * window < start + len(NEEDLE), "the needle must straddle the fifth window border"
    big = docs / "log.txt"
    big.write_text(text, encoding="utf-8")
    small_docs(docs)
    assert big.stat().st_size > 10 * window
    page = docs / "page.html"  # bigger than the window too, but HTML is parsed whole: hashed in blocks, then read
    page.write_text("<html><body>" + "<p>The tide table lists 4 tides a day.</p>" * 80 + "</body></html>",
                    encoding="utf-8")
    assert page.stat().st_size > window

    qa.collection.ingestor.window_bytes = window
    report = qa.ingest([docs], progress=False)
    assert report.ok and len(report.added) == 4

    s = qa.settings
    source = str(big.resolve())
    whole = chunk_document(load_document(big), s.chunk_size, s.chunk_overlap)
    entry = Manifest.load(qa.collection.manifest_path).files[source]
    assert entry.chunk_ids == [c.id for c in whole], "streamed chunks must be the whole-file chunks"
    assert sorted(qa.store.ids_for_source(source)) == sorted(entry.chunk_ids)
    assert qa.store.count() == len(qa.bm25) == sum(i.chunks for i in qa.sources())
    assert qa.document_text(source) == text and entry.chars == len(text) and entry.size == len(text)
    # the UI asks with a size cap: a text over it is not loaded (its spans are shown without context)
    assert qa.document_text(source, max_bytes=len(text) - 1) is None
    assert qa.document_text(source, max_bytes=len(text)) == text

    ans = qa.ask("How many ships did the lighthouse keeper at Point Ardent log?")
    assert ans.short_answer and "4,812" in ans.short_answer
    c = ans.citations[0]
    assert c.source == source and text[c.start : c.end] == c.text and "4,812 ships" in c.text

    count = qa.store.count()
    again = qa.ingest([docs], progress=False)
    assert len(again.unchanged) == 4 and not again.added and qa.store.count() == count

    with big.open("a", encoding="utf-8") as fh:  # an update of a streamed file replaces its chunks
        fh.write("The harbour master retired in 1920.\n")
    third = qa.ingest([docs], progress=False)
    assert third.updated == [source]
    new_ids = Manifest.load(qa.collection.manifest_path).files[source].chunk_ids
    assert new_ids == [c.id for c in chunk_document(load_document(big), s.chunk_size, s.chunk_overlap)]
    assert sorted(qa.store.ids_for_source(source)) == sorted(new_ids)
    assert qa.store.count() == len(qa.bm25) == sum(i.chunks for i in qa.sources())


def test_file_changed_while_streamed_leaves_nothing_behind(
    qa: Citeqa, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file that grows while it is being read fails with one line; the batches already stored are removed
    (store, BM25, text), the other files are ingested, and the next run ingests it."""
    docs = tmp_path / "docs"
    docs.mkdir()
    growing = docs / "growing.txt"
    growing.write_text(prose(30, seed=5), encoding="utf-8")
    small_docs(docs)
    real_iter_text = runner.iter_text

    def append_while_reading(tf, window):  # type: ignore[no-untyped-def]
        for k, piece in enumerate(real_iter_text(tf, window)):
            if k == 2:
                with tf.path.open("a", encoding="utf-8") as fh:
                    fh.write("A late line written during the ingest.\n")
            yield piece

    monkeypatch.setattr(runner, "iter_text", append_while_reading)
    monkeypatch.setattr(runner, "EMBED_BATCH", 4)  # several batches are stored before the change is seen
    qa.collection.ingestor.window_bytes = 1024
    report = qa.ingest([docs], progress=False)
    source = str(growing.resolve())
    assert report.failed == [(source, "changed while being read: run the ingest again")]
    assert sorted(report.added) == sorted(str((docs / n).resolve()) for n in ("ferry.md", "orchard.txt"))
    assert qa.store.ids_for_source(source) == [] and source not in qa.bm25.sources()
    assert qa.store.count() == len(qa.bm25) == sum(i.chunks for i in qa.sources()) == 2
    texts = qa.settings.collection_dir / "texts"
    assert len(list(texts.glob("*.txt"))) == 2 and not list(texts.glob(".text-*"))

    monkeypatch.setattr(runner, "iter_text", real_iter_text)
    again = qa.ingest([docs], progress=False)
    assert again.added == [source] and again.ok
    assert qa.document_text(source) == growing.read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ 200 MB, slow


@pytest.mark.slow
def test_file_over_the_limit_is_skipped_without_being_read(big_dir: Path, tmp_path: Path) -> None:
    """`--max-file-mb 100` and a 200 MB file: one line naming the limit and the flag, the rest ingested, and
    the ingest's peak memory is that of the same ingest without the big file (it is judged from stat)."""
    small_docs(big_dir)
    base, base_peak = cli_with_peak_rss(["ingest", str(big_dir), "--max-file-mb", "100"], cli_env(tmp_path / "d0"))
    assert base["rc"] == 0, base["stderr"]
    huge = write_repeated(big_dir / "huge.txt", 200 * MB, prose(300).encode())

    r, peak = cli_with_peak_rss(["ingest", str(big_dir), "--max-file-mb", "100"], cli_env(tmp_path / "d1"))
    assert r["rc"] == 1
    lines = r["stderr"].splitlines()
    assert lines == [f"citeqa: skipped {huge}: file is 191 MB, over the 100 MB limit; raise --max-file-mb"]
    assert "2 added" in r["stdout"] and "1 failed" in r["stdout"]
    print(f"peak RSS: {peak} MB with the 200 MB file, {base_peak} MB without")
    assert peak < base_peak + 30, "the skipped file must not be read into memory"


@pytest.mark.slow
def test_200mb_text_file_streams_through_ingest_in_bounded_memory(big_dir: Path, tmp_path: Path) -> None:
    """A 200 MB .txt (under the default 200 MiB limit) ingested for real: hashed, decoded, chunked, embedded and
    stored window by window. It is mostly blank lines with a few facts, so only a few chunks are embedded;
    the last fact sits 200 MB in and its citation slices the file exactly. Peak memory stays that of an
    ingest of two small files plus a few MB, far below the file's size."""
    small_docs(big_dir)
    env = cli_env(tmp_path / "data")
    base, base_peak = cli_with_peak_rss(["ingest", str(big_dir)], dict(env, CITEQA_COLLECTION="baseline"))
    assert base["rc"] == 0, base["stderr"]

    blank = (" " * 99 + "\n").encode()  # 100-byte blank lines
    facts = [f"\n\nSurvey {i}: the {WORDS[i]} archive holds {1000 + i} maps.\n\n".encode() for i in range(4)]
    tail = f"\n\nThe vault under the summit archive holds {4812} sealed letters.\n".encode()
    sparse = big_dir / "sparse.txt"
    with sparse.open("wb") as fh:
        chunk = blank * 10_000  # 1 MB
        for i in range(199):
            fh.write(chunk)
            if i % 50 == 25:
                fh.write(facts[i // 50])
        fh.write(b" " * (200 * MB - fh.tell() - len(tail)) + tail)
    assert sparse.stat().st_size == 200 * MB

    r, peak = cli_with_peak_rss(["ingest", str(big_dir), "--json"], env)
    assert r["rc"] == 0, r["stderr"]
    report = json.loads(r["stdout"])
    assert len(report["added"]) == 3 and report["chunks"] == 2 + 5
    print(f"peak RSS: {peak} MB ingesting the 200 MB file, {base_peak} MB for the small files alone")
    assert peak < base_peak + 50, "memory must not grow with the file"

    q = subprocess.run([sys.executable, "-m", "ui.cli", "ask", "How many sealed letters does the vault hold?",
                        "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert q.returncode == 0, q.stderr
    c = json.loads(q.stdout)["citations"][0]
    assert c["source"] == str(sparse.resolve()) and c["start"] > 199 * MB
    with sparse.open("rb") as fh:  # ASCII: character offsets are byte offsets
        fh.seek(c["start"])
        assert fh.read(c["end"] - c["start"]).decode() == c["text"] and "4812 sealed letters" in c["text"]

    again, _ = cli_with_peak_rss(["ingest", str(big_dir), "--json"], env)
    assert json.loads(again["stdout"])["unchanged"] and not json.loads(again["stdout"])["added"]


STREAM_CHECK = r"""
import json, random, sys
from pathlib import Path

def mb(field):
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) // 1024 for l in fh if l.startswith(field))

from ingest.chunking import chunk_stream
from ingest.loaders import iter_text, scan_text_file

path, window = Path(sys.argv[1]), int(sys.argv[2])
words = lambda texts: [len(t.split()) * 4 // 3 + 1 for t in texts]  # ~word pieces, without the tokenizer's time
list(chunk_stream(["A warm-up sentence. " * 5000], "/w", "0" * 64, count_tokens=words))
base = mb("VmRSS")
tf = scan_text_file(path, 2**31)
rng = random.Random(1)
n = checked = borders = 0
prev_start, prev_end = -1, 0
with path.open("rb") as fh:
    def read(a, b):
        fh.seek(a)
        return fh.read(b - a).decode("ascii")
    for c in chunk_stream(iter_text(tf, window), tf.source, tf.content_hash, 128, 24, count_tokens=words):
        assert c.index == n and c.start > prev_start and c.end > prev_end, (n, c.start, c.end)
        if c.start > prev_end:  # a gap between chunks holds only whitespace: nothing is lost
            assert not read(prev_end, c.start).strip(), (prev_end, c.start)
        crosses = c.start // window != (c.end - 1) // window
        if crosses or rng.random() < 0.002:
            assert read(c.start, c.end) == c.text, (c.start, c.end)
            checked += 1
            borders += crosses
        prev_start, prev_end = c.start, c.end
        n += 1
    assert not read(prev_end, tf.size).strip()
print(json.dumps({"chunks": n, "checked": checked, "borders": borders, "growth": mb("VmHWM") - base, "base": base}))
"""


@pytest.mark.slow
def test_streaming_200mb_of_prose_keeps_memory_flat_and_offsets_exact(big_dir: Path) -> None:
    """The function the runner streams with (`chunk_stream` over `iter_text`), over 200 MB of prose, without
    the model: memory grows by less than 150 MB over the process's start, every chunk crossing a window
    border and a random sample of the rest slice the file exactly, and the chunks cover all of it."""
    path = write_repeated(big_dir / "prose.txt", 200 * MB, prose(400).encode(), tail=b"\n\nThe end.\n")
    window = 2 * 2**20
    r = subprocess.run([sys.executable, "-c", STREAM_CHECK, str(path), str(window)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    stats = json.loads(r.stdout)
    print(f"200 MB streamed: {stats}")
    assert stats["chunks"] > 200_000 and stats["borders"] >= 90 and stats["checked"] > 500
    assert stats["growth"] < 150, f"peak memory grew by {stats['growth']} MB"
