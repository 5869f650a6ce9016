"""Many users at once: a real `citeqa serve` process on a loopback port, 20 API clients (each its own
gradio_client session) asking different questions at the same time while documents are added through the
Library tab's upload, exactly as a browser sends it; and two `citeqa ingest` processes racing on one collection.

Latencies are measured and written to a JSON file (its path is printed), never asserted.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import stop_process, wait_until_up
from tests.integration.chroma_server import free_port
from tests.integration.gradio_events import Events, file_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CITEQA = [sys.executable, "-m", "ui.cli"]
COLLECTION = "conc-docs"
USERS = 20
QUESTIONS_PER_USER = 3

TOWNS = (
    "Abervale Brindlemoor Caskwater Dunhollow Eldermere Fallowby Glimmerholt Hollinsward Ivybridge Jesmarch "
    "Kettlewyn Lockerby Marrowfield Nettlecombe Oakhurst Pellingford Quillhaven Ravenstock Sedgemoor Tarnwick"
).split()
RIVERS = (
    "Arrow Brede Colne Dove Exe Frome Glaven Hodder Isbourne Kennet Lugg Mease Nidd Otter Piddle Roding Sence "
    "Teme Ure Wyre"
).split()
ISLANDS = "Skerrowen Tallaskey Mirrowick Ondrel Vasquay Hollowind".split()


@dataclass(frozen=True)
class Case:
    question: str
    fact: str  # must appear in the answer
    source: str  # file name the first citation must point to


def town_cases(i: int) -> list[Case]:
    town, river = TOWNS[i], RIVERS[i]
    src = f"{town.lower()}.txt"
    return [
        Case(f"What is the population of {town}?", f"{31_000 + 1_117 * i:,}", src),
        Case(f"In which year was {town} founded?", str(1203 + 17 * i), src),
        Case(f"Which river flows through {town}?", river, src),
    ]


def write_towns(folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, town in enumerate(TOWNS):
        text = (
            f"{town} is a market town in the northern hills. The population of {town} is "
            f"{31_000 + 1_117 * i:,} people. {town} was founded in {1203 + 17 * i} by wool merchants. "
            f"The river {RIVERS[i]} flows through {town}, and its old stone bridge has {3 + i % 5} arches.\n"
        )
        (folder / f"{town.lower()}.txt").write_text(text, encoding="utf-8")


def write_islands(folder: Path) -> list[Path]:
    """Documents added while the users ask: long enough that the ingest takes a while."""
    folder.mkdir(parents=True)
    out = []
    for i, island in enumerate(ISLANDS):
        filler = " ".join(
            f"In survey {j} the wardens of {island} counted {100 + 7 * j + i} nesting puffins on the cliffs."
            for j in range(60)
        )
        text = f"The island of {island} has {11 + 4 * i} lighthouses. {filler}\n"
        p = folder / f"{island.lower()}.txt"
        p.write_text(text, encoding="utf-8")
        out.append(p)
    return out


def env_for(data: Path) -> dict[str, str]:
    env = {**os.environ, "CITEQA_DATA_DIR": str(data), "CITEQA_EMBEDDER": "minilm-int8",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "ANONYMIZED_TELEMETRY": "False"}
    for var in ("CITEQA_COLLECTION", "CITEQA_CHROMA", "CITEQA_LLM", "CITEQA_AUTH"):
        env.pop(var, None)
    return env




@dataclass
class Server:
    url: str
    data: Path
    log: Path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:

    root = tmp_path_factory.mktemp("concurrency")
    data, docs = root / "data", root / "towns"
    write_towns(docs)
    env = env_for(data)
    r = subprocess.run([*CITEQA, "ingest", str(docs), "--collection", COLLECTION], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    port = free_port()
    log = root / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen([*CITEQA, "serve", "--port", str(port), "--collection", COLLECTION], cwd=REPO,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(proc, url, log, timeout=120)
        yield Server(url, data, log)
    finally:
        stop_process(proc, timeout=20)


def upload_through_library(url: str, paths: list[Path]) -> dict:
    """Add files as the browser does: POST them to /gradio_api/upload, then run the Library tab's upload event
    (private to API clients, so it is called by its index on the queue) and read its result stream; returns
    the `process_completed` message."""
    with Events(url, timeout=300) as events:
        files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in paths]
        served = events.http.post("gradio_api/upload", files=files).raise_for_status().json()
        payload = [file_data(s, p.name) for s, p in zip(served, paths, strict=True)]
        return events.call("cq-upload", "upload", [payload, None], Events.new_session()).messages[-1]


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))]


def test_twenty_users_ask_while_documents_are_added(server: Server, tmp_path: Path) -> None:
    from gradio_client import Client

    new_docs = write_islands(tmp_path / "islands")
    barrier = threading.Barrier(USERS + 1)
    results: dict[int, list[tuple[Case, dict | None, str | None, float, float, float]]] = {}
    ingest: dict[str, object] = {}

    def user(i: int) -> None:
        client = Client(server.url, verbose=False)  # one client = one session
        cases = town_cases(i)
        out = []
        barrier.wait()
        for case in cases:
            t0 = time.perf_counter()
            try:
                res, err = client.predict(case.question, api_name="/ask"), None
            except Exception as exc:  # recorded, asserted below with the others
                res, err = None, f"{type(exc).__name__}: {exc}"
            out.append((case, res, err, t0, time.perf_counter(), (time.perf_counter() - t0) * 1000))
        results[i] = out

    def ingester() -> None:
        barrier.wait()
        time.sleep(0.3)  # the users' first questions are in flight
        ingest["start"] = time.perf_counter()
        try:
            ingest["msg"] = upload_through_library(server.url, new_docs)
        except Exception as exc:
            ingest["error"] = f"{type(exc).__name__}: {exc}"
        ingest["end"] = time.perf_counter()

    threads = [threading.Thread(target=user, args=(i,), name=f"user-{i}") for i in range(USERS)]
    threads.append(threading.Thread(target=ingester, name="ingester"))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=400)
    assert not any(t.is_alive() for t in threads), "a user or the ingest hung"

    # every user got their own answers: their fact, their document, no error
    rows = [row for i in range(USERS) for row in results[i]]
    assert len(rows) == USERS * QUESTIONS_PER_USER
    errors = [(c.question, err) for c, _, err, *_ in rows if err]
    assert not errors, errors
    for case, res, *_ in rows:
        assert res is not None and res["question"] == case.question, "each reply answers the request it came for"
        assert not res["abstained"], case.question
        assert case.fact in res["answer"], (case.question, res["answer"])
        assert res["citations"], case.question
        assert Path(res["citations"][0]["source"]).name == case.source, (case.question, res["citations"][0])
        others = {Path(c["source"]).name for c in res["citations"]} - {case.source}
        assert not others & {f"{t.lower()}.txt" for t in TOWNS}, f"{case.question} cites another town: {others}"

    # the ingest finished and the new documents are answered from
    assert "error" not in ingest, ingest.get("error")
    msg = ingest["msg"]
    assert msg["success"], msg
    report = msg["output"]["data"][1]
    assert f"{len(ISLANDS)} added" in report and "not added" not in report, report
    client = Client(server.url, verbose=False)
    for i, island in enumerate(ISLANDS[:3]):
        res = client.predict(f"How many lighthouses does the island of {island} have?", api_name="/ask")
        assert not res["abstained"] and str(11 + 4 * i) in res["answer"], res["answer"]
        assert Path(res["citations"][0]["source"]).name == f"{island.lower()}.txt"

    # latency, and whether the server answered several at once (its own time per answer, summed, beyond the
    # wall time means overlapping work)
    lat = [ms for *_, ms in rows]
    t_first, t_last = min(r[3] for r in rows), max(r[4] for r in rows)
    server_ms = sum(r[1]["timings"]["total"] for r in rows)
    wall_ms = (t_last - t_first) * 1000
    during = sum(1 for r in rows if r[3] < ingest["end"] and r[4] > ingest["start"])
    figures = {
        "users": USERS,
        "requests": len(rows),
        "p50_ms": round(percentile(lat, 50), 1),
        "p95_ms": round(percentile(lat, 95), 1),
        "max_ms": round(max(lat), 1),
        "mean_ms": round(statistics.fmean(lat), 1),
        "server_answer_p50_ms": round(percentile([r[1]["timings"]["total"] for r in rows], 50), 1),
        "wall_s": round(wall_ms / 1000, 2),
        "server_answer_ms_sum": round(server_ms, 1),
        "overlap_factor": round(server_ms / wall_ms, 2),
        "ingest_s": round(float(ingest["end"]) - float(ingest["start"]), 2),  # type: ignore[arg-type]
        "requests_overlapping_ingest": during,
        "cpus": os.cpu_count(),
    }
    out = tmp_path / "concurrency-latency.json"
    out.write_text(json.dumps(figures, indent=2), encoding="utf-8")
    print(f"\nconcurrency: {json.dumps(figures)}\nwritten to {out}\n{report}")


def test_an_ingest_by_another_process_is_refused_while_the_server_holds_the_embedded_store(
    server: Server, tmp_path: Path
) -> None:
    """Embedded Chroma is one process's: a running server would not see vectors another process adds. So
    `citeqa ingest` (and `forget`) into a served data dir is refused with one line saying what to do instead,
    nothing is written, and the server keeps answering."""
    from gradio_client import Client

    client = Client(server.url, verbose=False)
    question = town_cases(0)[0].question
    before = client.predict(question, api_name="/ask")
    assert not before["abstained"]
    late = tmp_path / "late"
    late.mkdir()
    (late / "corrib.txt").write_text("The Corrib ferry leaves the harbour at 7:45 every morning.\n", encoding="utf-8")
    for cmd in (["ingest", str(late)], ["forget", str(late / "corrib.txt")]):
        r = subprocess.run([*CITEQA, *cmd, "--collection", COLLECTION], env=env_for(server.data),
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 1, r.stderr
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert "citeqa server" in lines[0] and "Library tab" in lines[0] and "CITEQA_CHROMA" in lines[0], lines[0]
    after = client.predict(question, api_name="/ask")
    assert after["answer"] == before["answer"] and after["citations"] == before["citations"]
    res = client.predict("When does the Corrib ferry leave the harbour?", api_name="/ask")
    assert "7:45" not in res["answer"]  # nothing was written behind the server's back


def test_a_waiting_ingest_is_not_overtaken_by_new_questions() -> None:
    """The UI's per-collection lock: questions keep arriving while an upload waits; the upload goes next."""
    from ui.engine import ReadWriteLock

    lock = ReadWriteLock()
    order: list[str] = []
    first_in, release_first = threading.Event(), threading.Event()

    def first_reader() -> None:
        with lock.read():
            first_in.set()
            release_first.wait(10)

    def writer() -> None:
        with lock.write():
            order.append("ingest")

    def later_reader() -> None:
        with lock.read():
            order.append("question")

    threads = [threading.Thread(target=first_reader)]
    threads[0].start()
    assert first_in.wait(10)
    threads.append(threading.Thread(target=writer))
    threads[1].start()
    time.sleep(0.2)  # the writer is waiting for the first reader
    threads.append(threading.Thread(target=later_reader))
    threads[2].start()
    time.sleep(0.2)
    assert order == [], "a question that came after the waiting ingest must not go first"
    release_first.set()
    for t in threads:
        t.join(10)
    assert order == ["ingest", "question"]


def _state(env: dict[str, str], collection: str) -> tuple[list[str], int, int, int]:
    """(sorted chunk ids in Chroma, Chroma count, manifest chunk count, BM25 size), read by a fresh process."""
    code = (
        "import json, sys\nfrom rag.settings import load_settings\nfrom ingest.compose import Citeqa\n"
        "qa = Citeqa(load_settings(collection=sys.argv[1]))\n"
        "ids = sorted(c.id for c in qa.store.iter_chunks())\n"
        "print(json.dumps([ids, qa.store.count(), sum(i.chunks for i in qa.sources()), len(qa.bm25)]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code, collection], env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    ids, count, manifest, bm25 = json.loads(r.stdout)
    return ids, count, manifest, bm25


def test_two_ingests_of_one_collection_never_interleave(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        body = " ".join(f"Ledger {i}-{j} says the ferry carried {i * 31 + j} crates of copper." for j in range(25))
        (docs / f"ledger{i:02d}.txt").write_text(body, encoding="utf-8")
    env = env_for(tmp_path / "data")

    clean = subprocess.run([*CITEQA, "ingest", str(docs), "--collection", "clean-run"], env=env,
                           capture_output=True, text=True, timeout=300)
    assert clean.returncode == 0, clean.stderr
    clean_ids, *_ = _state(env, "clean-run")

    args = [*CITEQA, "ingest", str(docs), "--collection", "raced"]
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = sorted(rc for rc, _, _ in outs)
    refused = [err for rc, _, err in outs if rc != 0]
    if codes == [0, 1]:  # at once: one refused, in one line that says why and what to do
        (err,) = refused
        assert err.count("\n") == 1 and err.startswith("citeqa: error: another ingest into collection 'raced'"), err
        assert "wait for it to finish" in err and "Traceback" not in err
        print(f"\ntwo ingests at once: one refused: {err.strip()}")
    else:  # one after the other: the second found nothing to do
        assert codes == [0, 0], outs
        print("\ntwo ingests at once: they ran one after the other")
        assert any("30 unchanged" in out for _, out, _ in outs), outs
    ids, count, manifest_chunks, bm25 = _state(env, "raced")
    assert ids == clean_ids and count == len(set(ids)) == manifest_chunks == bm25, "the same as one clean ingest"
