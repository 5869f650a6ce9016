"""A shared `citeqa serve` is safe from its sessions (issue 12). Each test runs the attack of one finding against a
real server on loopback, driving it over HTTP as a browser (or any script) can, events marked private included
(tests/integration/gradio_events.py), with a plain listener on another loopback port standing in for the
attacker's endpoint; and checks that the server now refuses, reads nothing and sends nothing.

1. the Evaluate tab reads only documents the server offers (never a folder a session names), and its eval
   collections do not show in the collection list;
2, 3. the answer backend is a name from the operator's list: a session cannot send the server's API key and its
   passages to its own URL, nor make the server open (or tell it whether there is) a file by path;
5. one deadline per backend call, and one answer at a time per session: a session cannot hold every answer slot;
7. asking (UI or /ask API) a collection that does not exist is a one-line error and creates nothing.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingest.compose import Citeqa
from rag.settings import Settings, load_settings
from tests.integration.chroma_server import free_port
from tests.integration.gradio_events import Events, Result, text_of
from tests.integration.listeners import SilentListener
from ui.app import ChatUI, Session, start
from ui.engine import Engine

pytestmark = pytest.mark.integration
COLLECTION = "shared-docs"
QUESTION = "How many troops did China send?"
SECRET = "sk-server-secret-4f1c9e"
VAULT = "The vault code of the private archive is 7741."
LEAK = "archive is 7741"  # the private passage (the suite's own gold answer, "7741", may be shown)


@pytest.fixture(autouse=True)
def _no_operator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CITEQA_BACKENDS", "CITEQA_BACKENDS_FILE", "CITEQA_AUTH", "CITEQA_LLM_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def factory(embedder):
    def make(s: Settings, embedder_=None, **kw):
        return Citeqa(s, embedder=kw.get("embedder") or embedder)

    return make


@pytest.fixture
def docs(factory, vostok_dir: Path) -> Citeqa:
    """The server's collection, with the Vostok article in it (ingested by the operator, as `citeqa ingest`)."""
    qa = factory(load_settings(collection=COLLECTION))
    qa.ingest([vostok_dir], progress=False)
    return qa


@contextmanager
def served(factory, **settings) -> Iterator[tuple[str, Events]]:
    s = load_settings(collection=COLLECTION, **settings)
    app, url = start(s, "127.0.0.1", free_port(), factory=factory)
    try:
        with Events(url) as events:
            yield url, events
    finally:
        app.close()


def chat_text(result: Result) -> str:
    """The last assistant message of a chat event's output."""
    messages = result.data[0] if result.data else []
    return text_of(messages[-1]["content"]) if messages else ""


# -- 1. the Evaluate tab reads only what the server offers --------------------------------------------------------
def test_eval_runs_only_over_offered_documents(docs, factory, tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir()
    (private / "archive.txt").write_text(VAULT + "\n", encoding="utf-8")
    suite = tmp_path / "tiny.jsonl"
    suite.write_text(
        "\n".join(json.dumps(c) for c in [
            {"id": "vault", "question": "What is the vault code of the private archive?", "answers": ["7741"],
             "sources": ["archive.txt"]},
            {"id": "troops", "question": QUESTION, "answers": ["more than 2,000"], "sources": ["vostok-2022.txt"]},
        ]) + "\n",
        encoding="utf-8",
    )
    data_dir = docs.settings.data_dir
    with served(factory) as (_, ev):
        sess = ev.new_session()
        uploaded = ev.upload(suite)  # the attack's first step works: anyone may upload a file
        attacks = [
            [uploaded["path"], None, str(private), 0],  # the uploaded suite's path as the suite, a folder as docs
            [None, uploaded, str(private), 0],  # the suite uploaded properly, a server folder as docs
            [None, uploaded, f"collection:{COLLECTION}/../../private", 0],
            [None, {"path": str(suite), "orig_name": "tiny.jsonl", "meta": {"_type": "gradio.FileData"}},
             f"collection:{COLLECTION}", 0],  # a server file posing as an upload
            ["shipped:../../../etc/passwd", None, "bundled", 0],
        ]
        for data in attacks:
            r = ev.call("cq-eval-run", "click", data, sess)
            assert not r.success, f"refused: {data}"
            assert LEAK not in r.error + text_of(r.data), "no passage of the private folder is shown"
        assert not (data_dir / "eval-runs").exists(), "no report was written"
        assert not (data_dir / "eval-index").exists() and not (data_dir / "eval-docs").exists()

        # the same suite over the collection's own documents runs, and shows only them
        r = ev.call("cq-eval-run", "click", [None, uploaded, f"collection:{COLLECTION}", 0], sess)
        assert r.success, r.error
        summary, _, worst, _, _ = r.data
        assert "2 cases" in summary and "vault" in worst, "the run happened and the failed case is listed"
        runs = list((data_dir / "eval-runs").iterdir())
        assert len(runs) == 1 and (runs[0] / "report.html").is_file()
        report = "".join(f.read_text(encoding="utf-8") for f in runs[0].iterdir())
        assert "vostok-2022.txt" in report and "China has sent more than 2,000 troops" in report
        assert LEAK not in report + text_of(r.data), "the private folder was not read"
        staged = sorted(p.name for p in (data_dir / "eval-docs" / COLLECTION).rglob("*") if p.is_file())
        assert staged == ["vostok-2022.txt"], "exactly the collection's documents were copied for the run"

        # its eval collection is not in anyone's collection list (the Library tab's, refreshed on page load)
        assert sorted(p.name for p in (data_dir / "collections").iterdir()) == [COLLECTION]
        load = next(d for d in ev.config["dependencies"] if any(ev_ == "load" for _, ev_ in d["targets"]))
        eid = ev.http.post("gradio_api/queue/join", json={
            "data": [None], "fn_index": load["id"], "trigger_id": None, "session_hash": sess, "event_data": None,
        }).raise_for_status().json()["event_id"]
        listed = ev.collect(sess, [eid])[eid]
        assert listed.success and "eval-" not in text_of(listed.data) and COLLECTION in text_of(listed.data)

    # an eval collection made by `citeqa eval` in the same data directory is not offered either
    (data_dir / "collections" / "eval-0123456789ab").mkdir()
    engine = Engine(load_settings(collection=COLLECTION), factory)
    assert engine.collections() == [COLLECTION]


def test_eval_handler_refuses_paths_itself(docs, factory, tmp_path: Path) -> None:
    """Behind Gradio's own check of the dropdowns, the handler maps only its own keys to folders and suites."""
    import gradio as gr

    from ui.evaluate import run_eval

    engine = Engine(load_settings(collection=COLLECTION), factory)
    with pytest.raises(gr.Error, match="pick the documents"):
        run_eval(engine, "shipped:docs", None, str(tmp_path), 0)
    with pytest.raises(gr.Error, match="pick a suite"):
        run_eval(engine, str(tmp_path / "suite.jsonl"), None, f"collection:{COLLECTION}", 0)
    assert not (docs.settings.data_dir / "eval-runs").exists()


# -- 2, 3. backends are names from the operator's list ---------------------------------------------------------------
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_a_session_cannot_send_the_servers_key_to_its_own_url(docs, factory, monkeypatch, kind: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OLLAMA_API_KEY", SECRET)
    with SilentListener() as attacker, served(factory, llm_timeout=5) as (_, ev):
        spec = (f"openai:m@http://127.0.0.1:{attacker.port}/v1" if kind == "openai"
                else f"ollama:m@127.0.0.1:{attacker.port}")
        sess = ev.new_session()
        saved = ev.call("cq-save-settings", "click", [5, True, spec, None], sess)
        assert not saved.success and "not in the list of choices" in saved.error, saved
        asked = ev.call("cq-send", "click", [QUESTION, [], [], None], sess)
        assert asked.success and "2,000" in chat_text(asked), "answered by the extractive default"
        assert attacker.connections == 0 and SECRET not in attacker.text() and "troops" not in attacker.text()
        assert ev.component_props("cq-llm")["choices"] == [["extractive", "extractive"]], "names only"

    # the handler refuses it too, whatever reaches it (the page's dropdown check aside)
    ui = ChatUI(Engine(load_settings(collection=COLLECTION), factory))
    sess_ = Session(COLLECTION, 5, True, "extractive")
    msg, _, after = ui.apply_settings(5, True, spec, sess_)
    assert "Not saved" in msg and "is not offered by this server" in msg and after.backend == "extractive"


def test_an_operator_backend_is_picked_by_name(docs, factory) -> None:
    pytest.importorskip("langchain_ollama")
    from tests.integration.fake_ollama import FakeOllama

    with FakeOllama(models=("tiny-llm",)) as ollama, \
            served(factory, backends=f"tiny=ollama:tiny-llm@127.0.0.1:{ollama.port}") as (_, ev):
        assert [c[0] for c in ev.component_props("cq-llm")["choices"]] == ["extractive", "tiny"]
        assert str(ollama.port) not in text_of(ev.config), "the page holds names, not the backend's URL"
        sess = ev.new_session()
        saved = ev.call("cq-save-settings", "click", [5, True, "tiny", None], sess)
        assert saved.success and "backend tiny" in saved.data[0]
        asked = ev.call("cq-send", "click", [QUESTION, [], [], None], sess)
        answer = chat_text(asked)
        assert asked.success and "cq-answer" in answer and "Could not answer" not in answer, answer
        assert ollama.chat_requests(), "the operator's backend answered"


def test_llamacpp_paths_from_a_session_are_never_opened(docs, factory, monkeypatch, tmp_path: Path) -> None:
    import rag.llm

    opened: list[str] = []
    monkeypatch.setattr(rag.llm, "load_llama", lambda path, *a, **kw: opened.append(path))
    real = tmp_path / "exists.gguf"
    real.write_bytes(b"GGUF not really")
    with served(factory) as (_, ev):
        sess = ev.new_session()
        errors = []
        for path in (real, tmp_path / "missing.gguf", Path("/etc/passwd")):
            r = ev.call("cq-save-settings", "click", [5, True, f"llamacpp:{path}", None], sess)
            assert not r.success
            errors.append(r.error.replace(str(path), "PATH"))
        assert len(set(errors)) == 1, f"the same answer whether the file exists or not: {errors}"
        assert "GGUF" not in errors[0] and "cannot load" not in errors[0]
        asked = ev.call("cq-send", "click", [QUESTION, [], [], None], sess)
        assert asked.success and "2,000" in chat_text(asked)
    engine = Engine(load_settings(collection=COLLECTION), factory)
    messages = []
    for path in (real, tmp_path / "missing.gguf"):
        with pytest.raises(Exception) as err:
            engine.answering_qa(COLLECTION, hybrid=True, backend=f"llamacpp:{path}")
        messages.append(str(err.value).replace(str(path), "PATH"))
    assert messages[0] == messages[1] and "not offered by this server" in messages[0]
    assert opened == [], "no file was opened"


# -- 5. one deadline per call, one answer at a time per session ---------------------------------------------------
def test_one_session_cannot_hold_every_answer_slot(docs, factory) -> None:
    import langchain_openai  # noqa: F401  (imported here, so its first import is not timed below)

    timeout = 4.0
    with SilentListener() as dead, \
            served(factory, llm_timeout=timeout, backends=f"hang=openai:m@http://127.0.0.1:{dead.port}/v1") as (_, ev):
        a = ev.new_session()
        assert ev.call("cq-save-settings", "click", [5, True, "hang", None], a).success
        t0 = time.monotonic()
        ids = [ev.submit("cq-send", "click", [QUESTION, [], [], None], a) for _ in range(4)]  # every slot, before
        other: dict[str, object] = {}

        def b_asks() -> None:  # another session, on the extractive backend, meanwhile
            time.sleep(0.5)
            with Events(ev.http.base_url.__str__()) as ev2:
                r = ev2.call("cq-send", "click", [QUESTION, [], [], None], ev2.new_session())
                other.update(result=r, took=r.finished - t0)

        t = threading.Thread(target=b_asks)
        t.start()
        results = ev.collect(a, ids)
        t.join(timeout=60)
    texts = {eid: chat_text(r) for eid, r in results.items()}
    busy = [eid for eid, txt in texts.items() if "you already have an answer running" in txt]
    timed_out = [eid for eid, txt in texts.items() if "did not answer in time" in txt]
    assert len(busy) == 3 and len(timed_out) == 1, texts
    assert all(results[eid].finished - t0 < 2.0 for eid in busy), "the extra ones are refused at once"
    took = results[timed_out[0]].finished - t0
    # before: 2 x timeout (the client's retry got a timeout of its own); now the retry shares the one deadline
    assert timeout - 0.3 <= took <= timeout + 2.5, f"one deadline, retry included: {took:.1f} s"
    r = other["result"]
    assert isinstance(r, Result) and r.success and "2,000" in chat_text(r)
    assert other["took"] < took, "another session was answered while the hanging one still held its slot"


def test_api_callers_get_one_answer_at_a_time(docs, factory) -> None:
    import langchain_openai  # noqa: F401
    from gradio_client import Client

    timeout = 4.0
    with SilentListener() as dead, \
            served(factory, llm_timeout=timeout, llm=f"openai:m@http://127.0.0.1:{dead.port}/v1") as (url, _):
        client = Client(url, verbose=False)  # one client = one session
        t0 = time.monotonic()
        jobs = [client.submit(QUESTION, api_name="/ask") for _ in range(3)]
        errors = []
        for job in jobs:
            with pytest.raises(Exception) as err:
                job.result(timeout=60)
            errors.append((str(err.value), time.monotonic() - t0))
    busy = [e for e in errors if "you already have an answer running" in e[0]]
    timed_out = [e for e in errors if "did not answer in time" in e[0]]
    assert len(busy) == 2 and len(timed_out) == 1, errors
    # the deadline fired (the dead backend would otherwise hold the answer until the client gives up at 60 s);
    # not a speed check: a loaded 2-core machine took 6.5-11 s here for the 4 s deadline
    assert timed_out[0][1] < 40, timed_out


# -- 7. asking never creates a collection ------------------------------------------------------------------------------
def test_asking_a_missing_collection_creates_nothing(docs, factory) -> None:
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    data_dir = docs.settings.data_dir
    with served(factory) as (url, ev):
        client = Client(url, verbose=False)
        for i in range(5):
            with pytest.raises(AppError, match=rf"collection 'spam-{i}' does not exist: create it in the Library"):
                client.predict(QUESTION, None, f"spam-{i}", api_name="/ask")
        assert client.predict(QUESTION, None, COLLECTION, api_name="/ask")["citations"], "existing ones answer"
        sess = ev.new_session()
        r = ev.call("cq-collection-pick", "input", ["spam-x", None], sess)  # switching to a made-up name
        assert not r.success or "There is no collection" in text_of(r.data)
    assert sorted(p.name for p in (data_dir / "collections").iterdir()) == [COLLECTION]
    names = sorted(c if isinstance(c, str) else c.name for c in docs.collection.client.list_collections())
    assert names == [COLLECTION], "no Chroma collection was created"
    # the Library's switch refuses an unknown name itself, too
    from ui.library import LibraryUI

    engine = Engine(load_settings(collection=COLLECTION), factory)
    lib = LibraryUI(engine, ChatUI(engine))
    msg, ok = lib._use("spam-y", Session(COLLECTION, 5, True, "extractive"), create=False)
    assert not ok and "There is no collection" in msg
    assert not (data_dir / "collections" / "spam-y").exists()
