"""Replicas under load (issue 16, docs/deployment.md): one ``chroma run``, R ``citeqa serve`` replicas with data
directories of their own, U concurrent users asking through the REST API (each question sent to a replica
picked at random, as a load balancer without sticky sessions would), while a third process ingests D documents
one at a time (D commits).

    python -m evals.tools.bench_replicas [--replicas 2] [--users 40] [--docs 50] [--seed-docs 10] [--out FILE]
    python -m evals.tools.bench_replicas --compare   # the same run with 2 replicas, then with 1

Reported: answers, errors (anything but HTTP 200, or a failed request), latency p50/p95/max, and answers from a
half-ingested file: an answer showing a chunk of document i although its request ended before document i's
commit began (the ingest process notes that moment). Each document is a station with a made-up name and one
fact, in several chunks, so questions about it retrieve it only once it is in. Prints JSON (and writes it to
``--out``), with the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

KEY = "bench-replicas-key-0123456789"
COLLECTION = "stations"
_SYL = ["kor", "vath", "lun", "mer", "dris", "tal", "ob", "quen", "sar", "wil", "yth", "zen", "pra", "gol", "hex"]
_FILLER = ("The coastal station keeps records of weather, tides and passing ships. Keepers rotate every month and "
           "log the state of the lamp, the fog horn and the radio mast. Supplies arrive by boat when the sea allows. ")


def _seconds(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    call()
    return time.perf_counter() - t0


def station(i: int) -> tuple[str, str, str, str]:
    """(file name, text, question, answer) of document ``i``: made-up name, one fact, about four chunks."""
    rng = random.Random(i)
    name = "".join(rng.choice(_SYL) for _ in range(3)).capitalize() + f"{i:02d}"
    boats = rng.randint(3, 97)
    paras = [f"{name} station. {_FILLER}" * 2,
             f"The {name} station keeps {boats} boats in its harbour. {_FILLER}",
             f"History of {name}. {_FILLER}" * 2,
             f"Visiting {name}: {_FILLER}"]
    question = f"How many boats does the {name} station keep?"
    return f"station-{i:03d}.txt", "\n\n".join(paras) + "\n", question, str(boats)


def write_docs(folder: Path, lo: int, hi: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(lo, hi):
        name, text, _, _ = station(i)
        (folder / name).write_text(text, encoding="utf-8")
        out.append(folder / name)
    return out


# -- the ingest process ------------------------------------------------------------------------------------------
def ingest_worker(chroma: str, data_dir: Path, docs: Path, times: Path) -> None:
    """Ingest the files of ``docs`` one at a time (each its own commit), noting for each the moment its commit
    began (one JSON line: file name, time)."""
    from ingest.compose import Citeqa
    from rag.settings import load_settings

    qa = Citeqa(load_settings(data_dir=data_dir, collection=COLLECTION, chroma=chroma, embedder="minilm-int8"))
    ledger = qa.collection.ledger
    commit = ledger.commit
    current: list[str] = [""]

    def timed(changes: Any, held: Any) -> int:
        with times.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps({"file": current[0], "t": time.time()}) + "\n")
        return commit(changes, held)

    ledger.commit = timed  # this process's own ledger object: notes the time, then commits as ever
    for path in sorted(docs.iterdir()):
        current[0] = path.name
        for _ in range(100):  # a replica may hold the lock a moment (none ingests in this bench, but be fair)
            try:
                qa.ingest([path], progress=False)
                break
            except Exception as exc:
                if "another ingest" not in str(exc):
                    raise
                time.sleep(0.1)


# -- the users -----------------------------------------------------------------------------------------------------
def _user(urls: list[str], questions: list[tuple[int, str]], stop: threading.Event, seed: int,
          out: list[dict[str, Any]]) -> None:
    import httpx

    rng = random.Random(seed)
    with httpx.Client(timeout=300, headers={"Authorization": f"Bearer {KEY}"}) as h:
        while not stop.is_set():
            i, q = rng.choice(questions)
            url = rng.choice(urls)
            t0 = time.time()
            rec: dict[str, Any] = {"doc": i, "t0": t0}
            try:
                r = h.post(f"{url}api/ask", json={"question": q, "collection": COLLECTION, "k": 8})
                rec["status"] = r.status_code
                if r.status_code == 200:
                    body = r.json()
                    rec["files"] = sorted({Path(x["source"]).name for x in body["retrieved"]})
                    rec["answer"] = body["answer"]
                else:
                    rec["error"] = r.text[:300]
            except Exception as exc:  # a refused or broken connection is an error of the run, counted
                rec["status"], rec["error"] = 0, f"{type(exc).__name__}: {exc}"[:300]
            rec["t1"] = time.time()
            out.append(rec)


def _warm(url: str, question: str) -> None:
    import httpx

    r = httpx.post(f"{url}api/ask", json={"question": question, "collection": COLLECTION},
                   headers={"Authorization": f"Bearer {KEY}"}, timeout=600)
    r.raise_for_status()


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else 0.0


def run(*, replicas: int = 2, users: int = 40, docs: int = 50, seed_docs: int = 10, work: Path | None = None,
        min_seconds: float = 0.0) -> dict[str, Any]:
    """One run; returns its figures."""
    from evals.tools.cluster import REPO, chroma_run, citeqa_serve, replica_env

    if replicas < 1 or users < 1 or docs < 1 or seed_docs < 1:
        raise SystemExit("bench_replicas: --replicas, --users, --docs and --seed-docs must be >= 1")
    with ExitStack() as stack:
        root = work or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="citeqa-replicas-")))
        hostport = stack.enter_context(chroma_run(root / "chroma"))
        write_docs(root / "seed", 0, seed_docs)
        write_docs(root / "incoming", seed_docs, seed_docs + docs)
        env = replica_env(root / "ingester", hostport, collection=COLLECTION, embedder="minilm-int8")
        r = subprocess.run([sys.executable, "-m", "ui.cli", "ingest", str(root / "seed"), "--json"], env=env,
                           cwd=REPO, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"seeding failed: {r.stderr[-2000:]}")
        servers = [stack.enter_context(citeqa_serve(root / f"replica-{n}", hostport, collection=COLLECTION,
                                                    api_keys=KEY, embedder="minilm-int8"))
                   for n in range(replicas)]
        urls = [s.url for s in servers]
        for url in urls:  # each replica's first answer loads its models: not part of the figures
            _warm(url, station(0)[2])
        questions = [(i, station(i)[2]) for i in range(seed_docs + docs)]
        results: list[dict[str, Any]] = []
        stop = threading.Event()
        threads = [threading.Thread(target=_user, args=(urls, questions, stop, n, results), daemon=True)
                   for n in range(users)]
        times = root / "commits.jsonl"
        t_start = time.time()
        for t in threads:
            t.start()
        ingester = subprocess.run(
            [sys.executable, "-m", "evals.tools.bench_replicas", "--ingest-worker", hostport, str(root / "ingester"),
             str(root / "incoming"), str(times)], env=env, cwd=REPO, capture_output=True, text=True, timeout=3600)
        t_ingested = time.time()
        while time.time() - t_start < min_seconds:
            time.sleep(0.2)
        stop.set()
        for t in threads:
            t.join(timeout=600)
        if ingester.returncode != 0:
            raise RuntimeError(f"the ingest process failed: {ingester.stderr[-2000:]}")
        commit_at: dict[str, float] = {}
        for line in times.read_text(encoding="utf-8").splitlines() if times.exists() else []:
            rec = json.loads(line)
            commit_at.setdefault(rec["file"], rec["t"])
    names = {i: station(i)[0] for i in range(seed_docs + docs)}
    answers = {i: station(i)[3] for i in range(seed_docs + docs)}
    ok = [r for r in results if r.get("status") == 200]
    half = [r for r in ok for f in r["files"] if f in commit_at and r["t1"] < commit_at[f]]
    right = [r for r in ok if answers[r["doc"]] in r["answer"]]
    lat = [(r["t1"] - r["t0"]) * 1000 for r in ok]
    return {
        "replicas": replicas, "users": users, "docs_ingested": len(commit_at), "seed_docs": seed_docs,
        "answers": len(ok), "errors": len(results) - len(ok),
        "error_examples": [r.get("error") for r in results if r.get("status") != 200][:3],
        "half_ingested_answers": len(half),
        "answered_right": len(right),
        "asked_about_ingested_doc_before_commit": sum(1 for r in ok if names[r["doc"]] in commit_at
                                                     and r["t0"] < commit_at[names[r["doc"]]]),
        "latency_ms": {"p50": round(_pct(lat, 50), 1), "p95": round(_pct(lat, 95), 1),
                       "max": round(max(lat, default=0.0), 1),
                       "mean": round(statistics.fmean(lat), 1) if lat else 0.0},
        "ingest_seconds": round(t_ingested - t_start, 1), "run_seconds": round(time.time() - t_start, 1),
        "answers_per_second": round(len(ok) / max(1e-9, time.time() - t_start), 2),
    }


def scale(chunks: int, per_file: int = 10, dim: int = 384) -> dict[str, Any]:
    """What grows with the collection, on one ``chroma run``: a replica's cold start (file records and chunk texts
    read, BM25 index derived), what one small commit costs each replica at its next question (the records since,
    the new chunks, and the BM25 matrix rebuilt over the whole corpus), and a dense query with the generation
    filter against one without. Synthetic chunks and random vectors (no model), so only the store is measured."""
    import numpy as np

    from evals.tools.cluster import chroma_run
    from ingest.ledger import Ledger
    from ingest.manifest import FileEntry
    from ingest.replica import Replica
    from rag.settings import load_settings
    from rag.store import GEN_KEY, ChromaStore, open_chroma_client
    from rag.types import Chunk

    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20000)]

    def make(lo: int, n: int) -> tuple[list[Chunk], dict[str, FileEntry]]:
        out, files = [], {}
        for f in range(lo // per_file, (lo + n) // per_file):
            src = f"/bench/file-{f:06d}.txt"
            cs = [Chunk(f"c{f:06d}-{j}", src, " ".join(rng.choice(words, 60)), j * 400, j * 400 + 399, index=j)
                  for j in range(per_file)]
            out.extend(cs)
            files[src] = FileEntry(src, f"{f:064x}", 4000, [c.id for c in cs], 0.0)
        return out, files

    def vecs(n: int) -> np.ndarray:
        v = rng.standard_normal((n, dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    with tempfile.TemporaryDirectory(prefix="citeqa-scale-") as tmp, chroma_run(Path(tmp) / "chroma") as hp:
        client = open_chroma_client(load_settings(data_dir=Path(tmp) / "d", chroma=hp))
        store = ChromaStore(client, "scale", "minilm-int8")
        ledger = Ledger(client, "scale")
        t0 = time.perf_counter()
        all_chunks, files = make(0, chunks)
        for lo in range(0, len(all_chunks), 2000):
            part = all_chunks[lo : lo + 2000]
            store.upsert(part, vecs(len(part)), extra={GEN_KEY: 1})
        with ledger.hold() as held:
            ledger.commit(files, held)
        load_s = time.perf_counter() - t0
        rep = Replica(ledger, store, Path(tmp) / "scratch")
        cold_sync = _seconds(lambda: rep.sync())
        cold_first_search = _seconds(lambda: rep.search("w1 w2 w3", 20))
        new, new_files = make(chunks, per_file)
        store.upsert(new, vecs(len(new)), extra={GEN_KEY: 2})
        with ledger.hold() as held:
            ledger.commit(new_files, held)
        inc_sync = _seconds(lambda: rep.sync())
        inc_first_search = _seconds(lambda: rep.search("w1 w2 w3", 20))
        unchanged_sync = _seconds(lambda: rep.sync())
        q = vecs(1)[0]
        timing: dict[str, float] = {}
        for label, upto in (("dense_query_ms", None), ("dense_query_with_generation_filter_ms", 2)):
            ts = []
            for _ in range(20):
                t0 = time.perf_counter()
                store.query(q, 20, upto=upto)
                ts.append((time.perf_counter() - t0) * 1000)
            timing[label] = round(statistics.median(ts), 1)
        return {"chunks": chunks + per_file, "files": len(files) + 1, "load_seconds": round(load_s, 1),
                "replica_cold_sync_s": round(cold_sync, 2), "replica_cold_first_search_s": round(cold_first_search, 2),
                "one_commit_sync_s": round(inc_sync, 3), "one_commit_first_search_s": round(inc_first_search, 3),
                "unchanged_sync_ms": round(unchanged_sync * 1000, 1), **timing}


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} x{os.cpu_count()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m evals.tools.bench_replicas", description=__doc__.split("\n\n")[0])
    p.add_argument("--replicas", type=int, default=2)
    p.add_argument("--users", type=int, default=40)
    p.add_argument("--docs", type=int, default=50, help="documents the third process ingests during the run")
    p.add_argument("--seed-docs", type=int, default=10, help="documents in the collection before the run")
    p.add_argument("--compare", action="store_true", help="run with 2 replicas, then with 1")
    p.add_argument("--scale", type=int, nargs="*", metavar="CHUNKS",
                   help="instead: what grows with a collection of these many chunks (e.g. 10000 100000)")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--ingest-worker", nargs=4, metavar=("CHROMA", "DATA_DIR", "DOCS", "TIMES"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.ingest_worker:
        chroma, data, docs, times = a.ingest_worker
        ingest_worker(chroma, Path(data), Path(docs), Path(times))
        return 0
    if a.scale is not None:
        report: dict[str, Any] = {"cpu": cpu(), "scale": [scale(n) for n in a.scale or [10000]]}
        print(json.dumps(report, indent=1))
        if a.out:
            a.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        return 0
    counts = [2, 1] if a.compare else [a.replicas]
    runs = [run(replicas=n, users=a.users, docs=a.docs, seed_docs=a.seed_docs) for n in counts]
    report = {"cpu": cpu(), "runs": runs}
    text = json.dumps(report, indent=1)
    print(text)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")
    return 0 if all(r["errors"] == 0 and r["half_ingested_answers"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
