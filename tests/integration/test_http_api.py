"""Issue 18: `citeqa serve`'s HTTP APIs, driven on a real server on loopback (the Gradio app with the API in front,
two real collections ingested from files written here, the default extractive answerer and the real embedder):
the official `openai` client (plain and streamed), LangChain's ChatOpenAI, the REST API, the keys and per-collection
access, and one clean error object for each kind of bad request."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ingest.compose import Citeqa
from rag.settings import load_settings
from tests.integration.chroma_server import free_port

pytestmark = pytest.mark.integration

FULL = "full-access-key-0123456789"
ALPHA_ONLY = "alpha-only-key-0123456789"
QUESTION = "When does the Corrib ferry leave the harbour?"
ALPHA = {
    "ferry.txt": "The Corrib ferry leaves the harbour at 7:45 every morning. Tickets are sold on the pier.\n\n"
                 "In winter the ferry does not run on Sundays, and the harbour office closes at noon.\n",
    "lighthouse.md": "# The lighthouse\n\nThe Aran lighthouse was built in 1857 from granite quarried on the island. "
                     "Its lamp can be seen 23 miles out to sea.\n",
}
BETA = {"secret.txt": "The vault code of the beta project is 4417, known only to the beta team.\n"}


@dataclass
class Server:
    url: str
    docs: Path
    data: Path

    def client(self, key: str = FULL) -> Any:
        from openai import OpenAI

        return OpenAI(base_url=f"{self.url}v1", api_key=key, max_retries=0, timeout=300)

    def post(self, path: str, body: Any = None, key: str | None = FULL, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kw.pop("headers", {}))
        content = kw.pop("content", None)
        if content is None and body is not None:
            content = json.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        return httpx.post(f"{self.url}{path.lstrip('/')}", content=content, headers=headers, timeout=300, **kw)

    def get(self, path: str, key: str | None = FULL) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.get(f"{self.url}{path.lstrip('/')}", headers=headers, timeout=300)


def write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[Server]:
    from ui.app import start

    root = tmp_path_factory.mktemp("http-api")
    keys = f"{FULL};{ALPHA_ONLY}=alpha"
    s = load_settings(data_dir=root / "data", collection="alpha", api_keys=keys, api_max_body_kb=64)
    docs = write(root / "alpha-docs", ALPHA)
    Citeqa(s, embedder=embedder).ingest([docs], progress=False)
    Citeqa(s.model_copy(update={"collection": "beta"}), embedder=embedder).ingest([write(root / "beta", BETA)],
                                                                                   progress=False)
    app, url = start(s, "127.0.0.1", free_port(),
                     factory=lambda settings, **kw: Citeqa(settings, **{"embedder": embedder, **kw}))
    try:
        yield Server(url, docs, s.data_dir)
    finally:
        app.close()


def assert_exact_citations(citations: list[dict]) -> None:
    assert citations
    for c in citations:
        text = Path(c["source"]).read_text(encoding="utf-8")
        assert text[c["start"]:c["end"]] == c["text"], c
        assert set(c) >= {"n", "source", "page", "start", "end", "text", "supported"}


# ------------------------------------------------------------------------------------------- OpenAI clients
def test_the_openai_client_gets_an_answer_with_exact_citations(server: Server) -> None:
    resp = server.client().chat.completions.create(model="citeqa/alpha",
                                                   messages=[{"role": "user", "content": QUESTION}])
    text = resp.choices[0].message.content
    assert "7:45" in text and "[1]" in text, text
    assert resp.object == "chat.completion" and resp.choices[0].finish_reason == "stop"
    extra = resp.model_extra
    assert_exact_citations(extra["citations"])
    assert Path(extra["citations"][0]["source"]).name == "ferry.txt"
    assert extra["citeqa"]["abstained"] is False


def test_streamed_text_equals_the_plain_answer_and_the_last_chunk_cites(server: Server) -> None:
    client = server.client()
    messages = [{"role": "user", "content": QUESTION}]
    plain = client.chat.completions.create(model="citeqa/alpha", messages=messages)
    chunks = list(client.chat.completions.create(model="citeqa/alpha", messages=messages, stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == plain.choices[0].message.content
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    assert last.model_extra["citations"] == plain.model_extra["citations"]
    assert_exact_citations(last.model_extra["citations"])


def test_history_and_abstention_are_ordinary_answers(server: Server) -> None:
    client = server.client()
    out = client.chat.completions.create(model="citeqa/alpha", messages=[
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "When was the Aran lighthouse built?"},
        {"role": "assistant", "content": "It was built in 1857 [1]."},
        {"role": "user", "content": [{"type": "text", "text": "How far out to sea can its lamp be seen?"}]},
    ])
    assert "23 miles" in out.choices[0].message.content
    nothing = client.chat.completions.create(model="citeqa/alpha", messages=[
        {"role": "user", "content": "What is the boiling point of liquid nitrogen on Jupiter?"}])
    assert nothing.choices[0].finish_reason == "stop" and nothing.model_extra["citeqa"]["abstained"] is True
    assert "could not find" in nothing.choices[0].message.content


def test_langchain_chatopenai_pointed_at_citeqa(server: Server) -> None:
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(base_url=f"{server.url}v1", api_key=FULL, model="citeqa/alpha", max_retries=0, timeout=300)
    assert "7:45" in llm.invoke(QUESTION).content
    assert "7:45" in "".join(str(part.content) for part in llm.stream(QUESTION))


def test_models_are_the_collections_a_key_may_use(server: Server) -> None:
    full = sorted(m.id for m in server.client().models.list())
    assert full == ["citeqa/alpha", "citeqa/beta"]
    assert [m.id for m in server.client(ALPHA_ONLY).models.list()] == ["citeqa/alpha"]


# ------------------------------------------------------------------------------------------------- keys
def test_keys_no_key_and_a_wrong_key_are_401(server: Server) -> None:
    import openai

    for key in (None, "wrong-key-0123456789abcdef"):
        r = server.post("v1/chat/completions", {"model": "citeqa/alpha", "messages": [
            {"role": "user", "content": QUESTION}]}, key=key)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key", r.text
        assert server.get("api/collections", key=key).status_code == 401
    with pytest.raises(openai.AuthenticationError):
        server.client("wrong-key-0123456789abcdef").models.list()


def test_a_key_limited_to_alpha_gets_403_for_beta_and_learns_nothing(server: Server) -> None:
    import openai

    bodies = []
    for model in ("citeqa/beta", "citeqa/no-such-collection"):
        r = server.post("v1/chat/completions", {"model": model, "messages": [
            {"role": "user", "content": "What is the vault code?"}]}, key=ALPHA_ONLY)
        assert r.status_code == 403, r.text
        assert "beta" not in r.text and "4417" not in r.text and "no-such" not in r.text
        bodies.append(r.json())
    assert bodies[0] == bodies[1], "a refusal must not tell an existing collection from a missing one"
    for path in ("api/collections/beta/sources",):
        assert server.get(path, key=ALPHA_ONLY).status_code == 403
    r = server.post("api/ask", {"question": "What is the vault code?", "collection": "beta"}, key=ALPHA_ONLY)
    assert r.status_code == 403 and "4417" not in r.text
    with pytest.raises(openai.PermissionDeniedError):
        server.client(ALPHA_ONLY).chat.completions.create(
            model="citeqa/beta", messages=[{"role": "user", "content": "What is the vault code?"}])
    ok = server.client(ALPHA_ONLY).chat.completions.create(
        model="citeqa/alpha", messages=[{"role": "user", "content": QUESTION}])
    assert "7:45" in ok.choices[0].message.content
    assert server.get("api/collections", key=ALPHA_ONLY).json() == {"collections": ["alpha"]}


# -------------------------------------------------------------------------------------------- bad requests
USER = [{"role": "user", "content": QUESTION}]
BAD = [  # (body, status, param, words in the message)
    ({"model": "citeqa/alpha"}, 400, "messages", "Field required"),
    ({"model": "citeqa/alpha", "messages": []}, 400, "messages", "at least 1"),
    ({"messages": USER}, 400, "model", "Field required"),
    ({"model": "citeqa/alpha", "messages": [{"role": "user", "content": ""}]}, 400, "messages", "no text"),
    ({"model": "citeqa/alpha", "messages": [{"role": "user", "content": "   "}]}, 400, "messages", "no text"),
    ({"model": "citeqa/alpha", "messages": [{"role": "user", "content": ""}], "stream": True}, 400, "messages",
     "no text"),
    ({"model": "citeqa/alpha", "messages": [{"role": "user", "content": "?!"}], "stream": True}, 400, "messages",
     "no words"),
    ({"model": "citeqa/alpha", "messages": [{"role": "assistant", "content": "hi"}]}, 400, "messages", "last message"),
    ({"model": "citeqa/nope", "messages": USER}, 404, "model", "no collection 'nope'"),
    ({"model": "citeqa/../etc", "messages": USER}, 400, "model", "model"),
    ({"model": 5, "messages": USER}, 400, "model", "string"),
    ({"model": "citeqa/alpha", "messages": "hello"}, 400, "messages", "list"),
    ({"model": "citeqa/alpha", "messages": [{"role": "user", "content": 42}]}, 400, "messages[0].content", ""),
    ({"model": "citeqa/alpha", "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0].role", ""),
    ({"model": "citeqa/alpha", "messages": [{"content": "hi"}]}, 400, "messages[0].role", "Field required"),
    ({"model": "citeqa/alpha", "messages": USER, "stream": "yes"}, 400, "stream", "boolean"),
    ({"model": "citeqa/alpha", "messages": USER, "k": 0}, 400, "k", "greater than"),
    ({"model": "citeqa/alpha", "messages": [{"role": "user", "content": "x" * 20_000}]}, 400, "messages", "long"),
    ([1, 2, 3], 400, None, "JSON object"),
]


@pytest.mark.parametrize(("body", "status", "param", "words"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_a_bad_request_is_one_clean_error_object(server: Server, body: Any, status: int, param: str | None,
                                                 words: str) -> None:
    r = server.post("v1/chat/completions", body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["param"] == param, err
    assert words.lower() in err["message"].lower() and "Traceback" not in r.text, err


def test_invalid_json_huge_bodies_and_the_server_keeps_answering(server: Server) -> None:
    for content in ('{"model": "citeqa/alpha", "messages": [', "not json at all", ""):
        r = server.post("v1/chat/completions", content=content, headers={"Content-Type": "application/json"})
        assert r.status_code in (400,), r.text
        assert r.json()["error"]["type"] == "invalid_request_error", r.text
    assert "valid JSON" in server.post("v1/chat/completions", content="{oops",
                                       headers={"Content-Type": "application/json"}).json()["error"]["message"]
    huge = json.dumps({"model": "citeqa/alpha", "messages": [{"role": "user", "content": "x" * 200_000}]})
    r = server.post("v1/chat/completions", content=huge, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while it arrives
        yield b'{"model": "citeqa/alpha", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"y" * 10_000
        yield b'"}]}'

    r = server.post("v1/chat/completions", content=chunked(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large", r.text
    # a declared length over the limit is refused before a byte of the body is sent
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1].strip("/")), timeout=60)
    try:
        conn.putrequest("POST", "/v1/chat/completions")
        for name, value in (("Content-Type", "application/json"), ("Content-Length", "999999999"),
                            ("Authorization", f"Bearer {FULL}")):
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413 and json.loads(resp.read())["error"]["code"] == "body_too_large"
    finally:
        conn.close()
    ok = server.client().chat.completions.create(model="citeqa/alpha", messages=USER)
    assert "7:45" in ok.choices[0].message.content


def test_unknown_api_paths_are_error_objects_and_the_ui_is_still_there(server: Server) -> None:
    r = server.get("v1/nothing-here")
    assert r.status_code == 404 and "error" in r.json()
    assert httpx.get(server.url, timeout=60).status_code == 200
    assert httpx.get(f"{server.url}config", timeout=60).status_code == 200


def test_openapi_docs_and_eval_suites(server: Server) -> None:
    page = httpx.get(f"{server.url}docs", timeout=60)
    assert page.status_code == 200 and "/v1/chat/completions" in page.text and "ChatRequest" in page.text
    assert "http" not in page.text.replace(server.url, "").split("<body>")[0], "the page loads nothing from outside"
    paths = httpx.get(f"{server.url}openapi.json", timeout=60).json()["paths"]
    assert {"/v1/chat/completions", "/v1/models", "/api/ask", "/api/eval"} <= set(paths)
    suites = server.get("api/eval/suites").json()
    assert "collection:alpha" in suites["docs"]
    assert "collection:beta" not in server.get("api/eval/suites", key=ALPHA_ONLY).json()["docs"]
    r = server.post("api/eval", {"suite": "shipped:nope", "docs": "collection:alpha"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "suite", r.text
    r = server.post("api/eval", {"suite": "shipped:nope", "docs": "collection:beta"}, key=ALPHA_ONLY)
    assert r.status_code == 403
    (server.data / "feedback").mkdir(parents=True, exist_ok=True)
    case = {"id": "f1", "question": QUESTION, "answers": ["7:45"], "sources": ["ferry.txt"], "answerable": True}
    (server.data / "feedback" / "alpha.jsonl").write_text(json.dumps(case) + "\n", encoding="utf-8")
    r = server.post("api/eval", {"suite": "feedback:alpha", "docs": "collection:alpha", "limit": 1})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["cases"] == 1 and out["metrics"] and Path(out["report_dir"], "report.json").is_file(), out


# -------------------------------------------------------------------------------------------------- REST
def test_rest_ask_is_the_ask_json_object(server: Server) -> None:
    r = server.post("api/ask", {"question": QUESTION, "k": 3})
    assert r.status_code == 200, r.text
    out = r.json()
    assert {"answer", "short_answer", "abstained", "citations", "timings", "retrieved"} <= set(out)
    assert "7:45" in out["answer"]
    assert_exact_citations(out["citations"])
    r = server.post("api/ask", {"question": ""})
    assert r.status_code == 400 and r.json()["error"]["param"] == "question", r.text
    r = server.post("api/ask", {"question": QUESTION, "colection": "alpha"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "colection", r.text


def test_rest_collections_sources_ingest_forget(server: Server) -> None:
    assert server.get("api/collections").json() == {"collections": ["alpha", "beta"]}
    names = sorted(Path(i["source"]).name for i in server.get("api/collections/alpha/sources").json())
    assert names == ["ferry.txt", "lighthouse.md"]
    note = b"The Inis Mor bicycle hire opens at 9:30 and closes at 18:00.\n"
    r = httpx.post(f"{server.url}api/collections/gamma/documents", headers={"Authorization": f"Bearer {FULL}"},
                   files=[("files", ("bikes.txt", note, "text/plain")), ("files", ("bad.exe", b"MZ", "x/y"))],
                   timeout=300)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["added"] == ["bikes.txt"] and [f["name"] for f in out["failed"]] == ["bad.exe"], out
    answer = server.client().chat.completions.create(
        model="citeqa/gamma", messages=[{"role": "user", "content": "When does the bicycle hire open?"}])
    assert "9:30" in answer.choices[0].message.content
    assert_exact_citations(answer.model_extra["citations"])
    (source,) = [i["source"] for i in server.get("api/collections/gamma/sources").json()]
    r = httpx.request("DELETE", f"{server.url}api/collections/gamma/documents", params={"source": source},
                      headers={"Authorization": f"Bearer {FULL}"}, timeout=300)
    assert r.status_code == 200 and r.json()["removed_chunks"] >= 1, r.text
    assert server.get("api/collections/gamma/sources").json() == []
    r = httpx.post(f"{server.url}api/collections/alpha/documents",
                   headers={"Authorization": f"Bearer {ALPHA_ONLY}"},
                   files=[("files", ("x.txt", b"x" * 10, "text/plain"))], timeout=60)
    assert r.status_code == 200
    r = httpx.post(f"{server.url}api/collections/beta/documents",
                   headers={"Authorization": f"Bearer {ALPHA_ONLY}"},
                   files=[("files", ("x.txt", b"x" * 10, "text/plain"))], timeout=60)
    assert r.status_code == 403


# ------------------------------------------------------------------------------------ access without keys
def test_without_keys_the_api_is_open_only_on_loopback_without_a_login(tmp_path: Path, embedder: Any) -> None:
    from ui.app import start

    s = load_settings(data_dir=tmp_path / "data", collection="alpha")
    Citeqa(s, embedder=embedder).ingest([write(tmp_path / "docs", ALPHA)], progress=False)
    factory = lambda settings, **kw: Citeqa(settings, **{"embedder": embedder, **kw})  # noqa: E731
    app, url = start(s, "127.0.0.1", free_port(), factory=factory)
    try:
        assert httpx.get(f"{url}v1/models", timeout=60).json()["data"][0]["id"] == "citeqa/alpha"
    finally:
        app.close()
    app, url = start(s, "127.0.0.1", free_port(), auth="user:secret-pw", factory=factory)
    try:
        r = httpx.post(f"{url}v1/chat/completions", json={"model": "citeqa/alpha", "messages": USER}, timeout=60)
        assert r.status_code == 401 and "CITEQA_API_KEYS" in r.json()["error"]["message"], r.text
        assert httpx.get(f"{url}api/collections", timeout=60).status_code == 401
    finally:
        app.close()


def test_citeqa_serve_reads_its_keys_from_the_environment(tmp_path: Path) -> None:
    from tests.conftest import stop_process
    from tests.integration.test_security_server import env_for, serve

    keys = tmp_path / "keys.txt"
    keys.write_text(f"# the team's key\n{ALPHA_ONLY}=alpha\n", encoding="utf-8")
    env = env_for(tmp_path / "data", CITEQA_API_KEYS=FULL, CITEQA_API_KEYS_FILE=str(keys), CITEQA_COLLECTION="alpha")
    proc, url, _ = serve([], env, tmp_path / "serve.log")
    try:
        assert httpx.get(f"{url}v1/models", timeout=60).status_code == 401
        for key in (FULL, ALPHA_ONLY):
            r = httpx.get(f"{url}v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=60)
            assert r.status_code == 200 and [m["id"] for m in r.json()["data"]] == ["citeqa/alpha"], r.text
    finally:
        stop_process(proc)
    assert "OpenAI-compatible API at" in (tmp_path / "serve.log").read_text()


def test_a_client_that_leaves_a_stream_leaves_no_lock_behind(server: Server) -> None:
    """The stream holds the collection's read lock; a client that goes after the first chunk must not keep it,
    or every later ingest and forget of the collection would wait for ever."""
    body = {"model": "citeqa/alpha", "messages": USER, "stream": True}
    for _ in range(3):
        with httpx.stream("POST", f"{server.url}v1/chat/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {FULL}"}) as r:
            assert r.status_code == 200
            next(r.iter_lines())
    r = httpx.request("DELETE", f"{server.url}api/collections/alpha/documents", params={"source": "/nowhere.txt"},
                      headers={"Authorization": f"Bearer {FULL}"}, timeout=60)  # takes the write lock
    assert r.status_code in (400, 404), r.text
    assert "error" in r.json()


def test_in_chroma_server_mode_the_servers_collections_are_models(tmp_path: Path, embedder: Any) -> None:
    """A collection another data directory built on the same `chroma run` server is listed and answers."""
    from tests.integration.chroma_server import chroma_server
    from ui.app import start

    with chroma_server(tmp_path / "chroma") as hostport:
        other = load_settings(data_dir=tmp_path / "A", collection="remote", chroma=hostport)
        Citeqa(other, embedder=embedder).ingest([write(tmp_path / "docs", ALPHA)], progress=False)
        s = load_settings(data_dir=tmp_path / "B", collection="local", chroma=hostport, api_keys=FULL)
        Citeqa(s, embedder=embedder).ingest([write(tmp_path / "beta", BETA)], progress=False)
        app, url = start(s, "127.0.0.1", free_port(),
                         factory=lambda settings, **kw: Citeqa(settings, **{"embedder": embedder, **kw}))
        try:
            srv = Server(url, tmp_path / "docs", s.data_dir)
            assert sorted(m.id for m in srv.client().models.list()) == ["citeqa/local", "citeqa/remote"]
            out = srv.client().chat.completions.create(model="citeqa/remote", messages=USER)
            assert "7:45" in out.choices[0].message.content
            assert_exact_citations(out.model_extra["citations"])
        finally:
            app.close()
