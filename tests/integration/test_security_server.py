"""A shared server is safe (issue 12): each finding reproduced against a real server on loopback (the Gradio app
in process, `citeqa serve` as a subprocess, a real `chroma run`), failing before its fix.

- 4: an upload's ingest never holds questions hostage, and what one file may cost is bounded;
- 6: Host headers other than the server's own are refused (DNS rebinding); failed logins are throttled;
- 9: a second data directory on the same Chroma collection deletes nothing it did not write;
- 10: a SIGKILL during an upload leaves nothing behind; the user's Markdown, non-text questions, odd upload
  names, Gradio's upload cache, data-directory errors.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ingest.compose import Citeqa
from rag.settings import load_settings
from tests.conftest import stop_process, wait_until_up
from tests.integration.chroma_server import chroma_server, free_port
from tests.integration.gradio_events import Events

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CITEQA = [sys.executable, "-m", "ui.cli"]
QUESTION = "How many troops did China send?"


def env_for(data: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}
    env.update(CITEQA_DATA_DIR=str(data), CITEQA_EMBEDDER="minilm-int8", GRADIO_ANALYTICS_ENABLED="False",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False", **extra)
    return env


def cli(*args: str, env: dict[str, str], timeout: float = 300, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CITEQA, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def raw_request(port: int, host: str, path: str = "/", method: str = "GET", body: str | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, str]:
    """One HTTP request with exactly the Host header given (as a rebinding page's browser would send it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def queue_event(url: str, elem_id: str, event: str, data: list[Any]) -> dict:
    """Run a UI event (private to API clients) the way the page does: by its index on the queue; returns the
    `process_completed` message."""
    with Events(url, timeout=600) as events:
        return events.call(elem_id, event, data, Events.new_session()).messages[-1]


def library_upload(url: str, files: list[tuple[str, bytes]]) -> tuple[dict, list[str]]:
    """Upload as the browser does (POST /gradio_api/upload, then the Library's upload event); returns the
    event's result and the paths Gradio cached the files under."""
    import httpx

    with httpx.Client(base_url=url, timeout=600) as h:
        served = h.post("gradio_api/upload", files=[("files", (n, b, "text/plain")) for n, b in files])
        served = served.raise_for_status().json()
    payload = [{"path": s, "orig_name": n, "meta": {"_type": "gradio.FileData"}}
               for s, (n, _) in zip(served, files, strict=True)]
    return queue_event(url, "cq-upload", "upload", [payload, None]), served


def serve(args: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen, str, int]:
    port = free_port()
    with log.open("a") as out:
        proc = subprocess.Popen([*CITEQA, "serve", "--port", str(port), *args], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(proc, url, log)
    except BaseException:
        stop_process(proc)
        raise
    return proc, url, port


class GatedEmbedder:
    """The real embedder, except that a call embedding a text with ``mark`` in it (the upload's, never a
    question's) waits at the gate: the test decides when that ingest may go on."""

    def __init__(self, inner: Any, mark: str) -> None:
        self.inner, self.mark = inner, mark
        self.name, self.dim = inner.name, inner.dim
        self.entered, self.release = threading.Event(), threading.Event()

    def embed(self, texts: Any) -> np.ndarray:
        if any(self.mark in t for t in texts):
            self.entered.set()
            assert self.release.wait(600), "the test never opened the gate"
        return self.inner.embed(texts)


class HashEmbedder:
    """A deterministic stand-in for the model (vectors from a hash of the text), ``delay`` seconds a call."""

    name, dim = "minilm-int8", 384

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def embed(self, texts: Any) -> np.ndarray:
        time.sleep(self.delay)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, t in enumerate(texts):
            seed = int.from_bytes(hashlib.sha256(t.encode("utf-8")).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            out[i] = v / np.linalg.norm(v)
        return out


def prose(n: int, seed: int = 3) -> str:
    words = ("harbour lantern orchard granite ferry meadow copper glacier beacon willow quarry canal signal tower "
             "river market bridge furnace island valley archive compass engine harvest timber ledger summit").split()
    rng = random.Random(seed)
    return " ".join(f"Record {i} says the {' '.join(rng.choice(words) for _ in range(12))} measured "
                    f"{rng.randint(1, 9999)} units." for i in range(n))


# ------------------------------------------------------------------------------------------------ finding 4
def test_a_question_is_answered_while_an_upload_ingests(vostok_dir: Path, embedder: Any) -> None:
    """Before: the upload's ingest held the collection's write lock from start to end, so /ask waited for it
    (40 s for a 0.9 MB .txt). Now the ingest takes the lock only to commit: the question is answered, from
    what was there before, while the upload is provably still ingesting (its embedding is held at a gate the
    test opens only after the answer came)."""
    from gradio_client import Client

    from ui.app import start

    s = load_settings(collection="while-ingest")
    Citeqa(s, embedder=embedder).ingest([vostok_dir], progress=False)
    gate = GatedEmbedder(embedder, mark="Zorblatt")
    app, url = start(s, "127.0.0.1", free_port(), factory=lambda settings, **kw: Citeqa(settings, embedder=gate))
    upload: dict[str, Any] = {}
    text = ("The Zorblatt ferry carries 314 passengers across the bay. " + prose(150)).encode()
    uploader = threading.Thread(target=lambda: upload.update(msg=library_upload(url, [("zorblatt.txt", text)])[0]))
    answered: dict[str, Any] = {}

    def ask() -> None:
        out = Client(url, verbose=False).predict(QUESTION, api_name="/ask")
        answered.update(out=out, ingest_still_held=not gate.release.is_set())

    try:
        uploader.start()
        assert gate.entered.wait(120), "the upload never got to embedding"
        asker = threading.Thread(target=ask)
        asker.start()
        asker.join(timeout=120)
        assert "out" in answered, "the question waited for the upload's ingest to end"
        assert answered["ingest_still_held"] and uploader.is_alive(), "answered while the ingest was running"
        assert answered["out"]["short_answer"] == "more than 2,000"
    finally:
        gate.release.set()
        uploader.join(timeout=300)
    try:
        report = upload["msg"]["output"]["data"][1]
        assert "1 added" in report and "not added" not in report, report
        out = Client(url, verbose=False).predict("How many passengers does the Zorblatt ferry carry?",
                                                 api_name="/ask")
        assert "314" in out["answer"], out["answer"]
    finally:
        app.close()


DOCX_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/><Default Extension="bin" '
    'ContentType="application/octet-stream"/><Override PartName="/word/document.xml" ContentType="application/'
    'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
DOCX_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="word/document.xml"/></Relationships>'
)


def expanding_docx(path: Path, chars: int = 40_000_000, pad: int = 800_000) -> Path:
    """A ~0.95 MB .docx whose text is ``chars`` characters, padded with a random part so that its compression
    ratio stays under the zip-bomb check's (100)."""
    para = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. " * 13)[:1000]
    body = f"<w:p><w:r><w:t>{para}</w:t></w:r></w:p>" * (chars // len(para))
    doc = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document xmlns:w="http://schemas.'
           f'openxmlformats.org/wordprocessingml/2006/main"><w:body>{body}</w:body></w:document>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", DOCX_CONTENT_TYPES)
        z.writestr("_rels/.rels", DOCX_RELS)
        z.writestr("word/document.xml", doc)
        z.writestr("word/media/pad.bin", random.Random(70).randbytes(pad))
    return path


def test_a_docx_that_expands_to_40m_characters_is_refused_in_one_line_and_nothing_is_lost(tmp_path: Path) -> None:
    """Before: it passed the zip-bomb check (ratio ~45 < 100) and its 40M characters would have been chunked and
    embedded for ~50 minutes. Now: one line naming the file and the setting, in seconds; the rest stays."""
    bomb = expanding_docx(tmp_path / "bomb.docx")
    with zipfile.ZipFile(bomb) as z:
        infos = z.infolist()
    ratio = sum(i.file_size for i in infos) / sum(i.compress_size for i in infos)
    assert 0.8e6 < bomb.stat().st_size < 1e6 and 30 < ratio < 100, (bomb.stat().st_size, ratio)
    fact = tmp_path / "fact.txt"
    fact.write_text("The Corrib ferry leaves the harbour at 7:45 every morning.\n", encoding="utf-8")
    env = env_for(tmp_path / "data")
    assert cli("ingest", str(fact), env=env).returncode == 0
    before = json.loads(cli("sources", "--json", env=env).stdout)

    r = cli("ingest", str(bomb), env=env, timeout=240)
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [f"citeqa: skipped {bomb}: its text is over the limit of 10,000,000 characters per file "
                     "(CITEQA_MAX_TEXT_CHARS): split it, or raise the limit"], r.stderr
    assert json.loads(cli("sources", "--json", env=env).stdout) == before
    out = json.loads(cli("ask", "When does the Corrib ferry leave?", "--json", env=env).stdout)
    assert "7:45" in out["answer"]


def test_a_file_over_the_time_limit_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    """`max_ingest_seconds`: checked between embedding batches, for a big document read whole and for a big
    text file streamed window by window; each refused in one line naming the setting, the others ingested."""
    s = load_settings(collection="time-limit", max_ingest_seconds=1.0)
    qa = Citeqa(s, embedder=HashEmbedder(delay=1.5))  # one batch alone outlasts the limit
    qa.collection.ingestor.window_bytes = 256 * 1024  # so the bigger of the two is streamed
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "small.txt").write_text("The Corrib ferry leaves at 7:45.", encoding="utf-8")
    (docs / "whole.txt").write_text(prose(1500), encoding="utf-8")  # ~190 KB: read whole, > 256 chunks
    (docs / "streamed.txt").write_text(prose(4000, seed=4), encoding="utf-8")  # ~500 KB: streamed
    window = qa.collection.ingestor.window_bytes
    assert (docs / "whole.txt").stat().st_size < window < (docs / "streamed.txt").stat().st_size
    report = qa.ingest([docs], progress=False)
    assert [Path(p).name for p in report.added] == ["small.txt"]
    why = "its ingest took longer than the limit of 1 s per file (CITEQA_MAX_INGEST_SECONDS): split it, or raise " \
          "the limit"
    assert sorted((Path(p).name, r) for p, r in report.failed) == [("streamed.txt", why), ("whole.txt", why)]
    assert qa.store.count() == len(qa.bm25) == sum(i.chunks for i in qa.sources()) == 1


# ------------------------------------------------------------------------------------------------ finding 6
def test_unknown_host_headers_are_refused_by_citeqa_serve(tmp_path: Path) -> None:
    """DNS rebinding: before, `Host: evil.example` was answered like any other. Now 400 with one line saying
    how to allow a name; loopback names, the bound address and --allowed-host names are answered."""
    env = env_for(tmp_path / "data", CITEQA_ALLOWED_HOSTS="docs.example")
    proc, url, port = serve([], env, tmp_path / "serve.log")
    try:
        body = json.dumps({"data": [QUESTION]})
        for path, method, data in (("/", "GET", None), ("/config", "GET", None), ("/gradio_api/info", "GET", None),
                                   ("/gradio_api/call/ask", "POST", body)):
            for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}"):
                status, text = raw_request(port, host, path, method, data, {"Content-Type": "application/json"})
                assert status == 400, (host, path, status, text[:200])
                assert text.count("\n") == 1 and "--allowed-host" in text and "CITEQA_ALLOWED_HOSTS" in text, text
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "docs.example", f"DOCS.example:{port}"):
            status, _ = raw_request(port, host, "/config")
            assert status == 200, host
    finally:
        stop_process(proc)


def test_the_allowed_host_flag_reaches_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    import ui.app
    from ui.cli import app as cli_app

    seen: dict[str, Any] = {}
    monkeypatch.setattr(ui.app, "serve", lambda s, **kw: seen.update(settings=s, **kw))
    r = CliRunner().invoke(cli_app, ["serve", "--host", "0.0.0.0", "--auth", "a:b", "--allowed-host", "Docs.Example",
                                     "--allowed-host", "*.corp.example"])
    assert r.exit_code == 0, r.output
    assert seen["settings"].allowed_hosts == ("docs.example", "*.corp.example") and seen["host"] == "0.0.0.0"
    r = CliRunner().invoke(cli_app, ["serve", "--allowed-host", "evil/x"])
    assert r.exit_code != 0 and "CITEQA_ALLOWED_HOSTS" in str(r.exception or r.output)


def test_failed_logins_are_throttled(tmp_path: Path) -> None:
    """--auth: five wrong passwords from one address within a minute, and the next login from it is refused
    (429, one line), the right password included; before, guesses were unlimited."""
    from gradio_client import Client

    from ui.app import start

    s = load_settings(collection="throttle")
    port = free_port()
    app, url = start(s, "127.0.0.1", port, auth="ada:s3cret-pass", factory=lambda settings, **kw: Citeqa(settings))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    try:
        for _ in range(5):
            status, _ = raw_request(port, f"127.0.0.1:{port}", "/login", "POST", "username=ada&password=guess", form)
            assert status == 400
        status, text = raw_request(port, f"127.0.0.1:{port}", "/login", "POST", "username=ada&password=s3cret-pass",
                                   form)
        assert status == 429 and text.startswith("citeqa: too many failed logins from 127.0.0.1: try again in ")
        assert text.count("\n") == 1
        with pytest.raises(Exception):  # noqa: B017 - gradio_client says only "Could not login"
            Client(url, auth=("ada", "s3cret-pass"), verbose=False)
    finally:
        app.close()


# ------------------------------------------------------------------------------------------------ finding 9
@pytest.fixture(scope="module")
def chroma_hostport(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as hostport:
        yield hostport


def test_a_second_data_dir_on_the_same_chroma_collection_deletes_nothing(
    chroma_hostport: str, vostok_dir: Path, tmp_path: Path, embedder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: a process with data dir B saw its empty BM25 index disagree with the shared collection, and its
    repair deleted data dir A's chunks (its manifest did not list them); A then said the collection was empty.
    Since issue 16 the manifest is the server's (the collection's ledger): B sees A's file as its own, repairs
    nothing and warns of nothing, and answers as A does."""
    shared = {"CITEQA_CHROMA": chroma_hostport, "CITEQA_COLLECTION": "shared-docs"}
    env_a, env_b = env_for(tmp_path / "A", **shared), env_for(tmp_path / "B", **shared)
    assert cli("ingest", str(vostok_dir), env=env_a).returncode == 0
    qa_a = Citeqa(load_settings(data_dir=tmp_path / "A", collection="shared-docs", chroma=chroma_hostport),
                  embedder=embedder)
    count = qa_a.store.count()
    assert count > 0

    r = cli("ask", QUESTION, "--json", env=env_b)
    assert r.returncode == 0, r.stderr
    assert qa_a.store.count() == count, "data dir B deleted data dir A's chunks"
    assert not r.stderr.strip(), r.stderr
    assert json.loads(r.stdout)["short_answer"] == "more than 2,000"

    # a server on B: many questions, no repair, no warning
    qa_b = Citeqa(load_settings(data_dir=tmp_path / "B", collection="shared-docs", chroma=chroma_hostport),
                  embedder=embedder)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            qa_b.ask(QUESTION)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.records
    assert [Path(i.source).name for i in qa_b.sources()] == ["vostok-2022.txt"]
    assert qa_a.store.count() == count
    out = json.loads(cli("ask", QUESTION, "--json", env=env_a).stdout)
    assert out["short_answer"] == "more than 2,000"


def test_a_repair_removes_what_its_own_crashed_ingest_wrote_and_nothing_else(
    tmp_path: Path, embedder: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from ingest.chunking import chunk_document
    from rag.types import Document

    s = load_settings(collection="own-crash")
    qa = Citeqa(s, embedder=embedder)
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("The Corrib ferry leaves the harbour at 7:45 every morning.", encoding="utf-8")
    b.write_text(prose(40), encoding="utf-8")
    qa.ingest([a], progress=False)
    # another data dir's chunk in the same collection (written straight into the store)
    other = Document(source="/elsewhere/other.txt", text="The Aran ferry leaves at 9:10.", content_hash="f" * 64)
    foreign = chunk_document(other, 128, 24)
    qa.store.upsert(foreign, embedder.embed([c.text for c in foreign]))

    def killed(chunks: Any) -> None:  # the process dies right after its store write
        raise KeyboardInterrupt

    monkeypatch.setattr(qa.bm25, "add", killed)
    with pytest.raises(KeyboardInterrupt):
        qa.ingest([b], progress=False)
    monkeypatch.undo()
    assert qa.collection.ingestor.marker.exists() and str(b.resolve()) in qa.store.source_counts()

    fresh = Citeqa(s, embedder=embedder)  # the next process
    with caplog.at_level(logging.WARNING, logger="ingest.runner"):
        assert fresh.collection.ensure_repaired()
    counts = fresh.store.source_counts()
    assert counts == {str(a.resolve()): 1, "/elsewhere/other.txt": len(foreign)}, counts
    assert not fresh.collection.ingestor.marker.exists()
    assert [r.getMessage() for r in caplog.records if "not deleted" in r.getMessage()]
    assert len(fresh.bm25) == 1 and [Path(i.source).name for i in fresh.sources()] == ["a.txt"]
    assert "7:45" in fresh.ask("When does the Corrib ferry leave?").answer


# ----------------------------------------------------------------------------------------------- finding 10
@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[str]:
    from ui.app import start

    root = tmp_path_factory.mktemp("ui-server")
    s = load_settings(data_dir=root / "data", collection="small-fixes")
    app, url = start(s, "127.0.0.1", free_port(), factory=lambda settings, **kw: Citeqa(settings, embedder=embedder))
    try:
        yield url
    finally:
        app.close()


def _content(message: dict) -> str:
    c = message.get("content")
    if isinstance(c, list):
        return "".join(part.get("text", "") for part in c if isinstance(part, dict))
    return str(c)


def test_markdown_in_ones_own_question_shows_as_text(ui_server: str) -> None:
    """Before: the question went into the chat as Markdown, so `![x](https://host/p.png)` made every browser
    showing the chat fetch that image. Now the user's message is text: no image, no link."""
    from markdown_it import MarkdownIt

    q = "Is it ![x](https://evil.example/pixel.png) or [this](https://evil.example/)?"
    msg = queue_event(ui_server, "cq-send", "click", [q, [], [], None])
    assert msg["success"], msg
    chat = msg["output"]["data"][0]
    user = [m for m in chat if m.get("role") == "user"]
    assert user, chat
    html = MarkdownIt("commonmark").render(_content(user[-1]))
    assert "<img" not in html and "<a " not in html and "evil.example/pixel.png" in html, html


def test_a_question_that_is_not_text_is_one_line_through_the_api(ui_server: str) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(ui_server, verbose=False)
    for bad in (42, ["How many troops?"], {"q": "How many troops?"}):
        with pytest.raises(AppError, match=r"the question must be text, not (int|list|dict): send the question as"):
            client.predict(bad, api_name="/ask")


def test_upload_names_made_of_dots_and_the_upload_cache(ui_server: str) -> None:
    """`..txt` is stored as `upload.txt` (before: `txt`, no extension, so it was refused), and the copy Gradio
    cached of each upload is gone once the Library has taken it."""
    msg, served = library_upload(ui_server, [("..txt", b"The Aran ferry leaves at 9:10 on Sundays.\n")])
    assert msg["success"], msg
    report = msg["output"]["data"][1]
    assert "1 added" in report and "upload.txt" in report and "not added" not in report, report
    assert served and not any(Path(p).exists() for p in served), "Gradio's cached copy is left behind"


def test_files_posted_to_the_upload_route_do_not_pile_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Anyone who can reach the server may POST files to /gradio_api/upload without using them; before, they
    stayed in Gradio's cache until the server stopped. Now the app's delete_cache sweeps them (interval and
    age made short here)."""
    import httpx

    import ui.app
    from ui.app import start

    monkeypatch.setattr(ui.app, "UPLOAD_CACHE", (1, 1))
    app, url = start(load_settings(collection="cache"), "127.0.0.1", free_port(),
                     factory=lambda settings, **kw: Citeqa(settings))
    try:
        with httpx.Client(base_url=url, timeout=60) as h:
            served = h.post("gradio_api/upload", files=[("files", ("junk.txt", b"x" * 1000, "text/plain"))])
            (path,) = served.raise_for_status().json()
        deadline = time.monotonic() + 60
        while Path(path).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not Path(path).exists(), "an unused upload stays in Gradio's cache"
    finally:
        app.close()


def test_data_dir_errors_are_one_line_and_an_empty_one_is_the_default(tmp_path: Path) -> None:
    afile = tmp_path / "a-file"
    afile.write_text("x", encoding="utf-8")
    doc = tmp_path / "doc.txt"
    doc.write_text("The Corrib ferry leaves at 7:45.", encoding="utf-8")
    for args, data in ((["sources"], str(afile)), (["ingest", str(doc)], str(afile / "sub")),
                       (["ask", "When?", "--data-dir", str(afile)], str(tmp_path))):
        r = cli(*args, env=env_for(Path(data)))
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2 and len(lines) == 1, r.stderr
        assert lines[0].startswith("citeqa: error: bad setting data_dir (--data-dir / CITEQA_DATA_DIR)"), lines
        assert "is a file, not a folder" in lines[0]
    # CITEQA_DATA_DIR="" is the default data dir, not the current directory
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    from rag.embeddings import model_cache_dir

    env = dict(env_for(tmp_path), CITEQA_DATA_DIR="", HOME=str(home), XDG_DATA_HOME=str(home / ".local/share"),
               CITEQA_CACHE_DIR=str(model_cache_dir()))  # the model copy already built, not rebuilt under HOME
    r = cli("ingest", str(doc), env=env, cwd=work)
    assert r.returncode == 0, r.stderr
    assert list(work.iterdir()) == [] and (home / ".local/share/citeqa/collections/default/manifest.json").exists()


def test_a_sigkill_during_an_upload_leaves_nothing_behind(tmp_path: Path) -> None:
    """Before: killing the server while an upload that replaced a file was ingesting left the new file and a
    hidden `.replaced-<uuid>` in uploads/ for good. Now the next start puts the old file back (the collection
    still holds it) and removes the rest; the old version answers."""
    data = tmp_path / "data"
    env = env_for(data, CITEQA_COLLECTION="kill-upload")
    log = tmp_path / "serve.log"
    proc, url, _ = serve([], env, log)
    folder = data / "uploads" / "kill-upload"
    marker = data / "collections" / "kill-upload" / "ingest.incomplete"
    try:
        v1 = b"The Corrib ferry leaves the harbour at 7:45 every morning.\n"
        msg, _ = library_upload(url, [("report.txt", v1)])
        assert "1 added" in msg["output"]["data"][1], msg
        v2 = ("The Corrib ferry now leaves at 6:15. " + prose(1500, seed=9)).encode()
        threading.Thread(target=lambda: _ignore(lambda: library_upload(url, [("report.txt", v2)])),
                         daemon=True).start()
        deadline = time.monotonic() + 120
        while not (marker.exists() and any(p.name.startswith(".replaced-") for p in folder.iterdir())):
            assert time.monotonic() < deadline and proc.poll() is None, "the replacement never started ingesting"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            stop_process(proc)
    assert any(p.name.startswith(".replaced-") for p in folder.iterdir()), "the kill came too late to test"

    proc, url, _ = serve([], env, log)
    try:
        assert sorted(p.name for p in folder.iterdir()) == ["report.txt"]
        assert (folder / "report.txt").read_bytes() == v1
        from gradio_client import Client

        out = Client(url, verbose=False).predict("When does the Corrib ferry leave?", api_name="/ask")
        assert "7:45" in out["answer"] and Path(out["citations"][0]["source"]).name == "report.txt", out["answer"]
    finally:
        stop_process(proc)


def _ignore(fn: Any) -> None:
    try:
        fn()
    except Exception:  # the server is killed under this upload: its connection breaks, as intended
        pass
