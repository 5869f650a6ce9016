"""The UI's API as scripts use it: the real app on a loopback port, called with gradio_client and plain HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import pytest
from gradio_client.exceptions import AppError

from ingest.compose import Citeqa
from rag.settings import load_settings
from tests.integration.chroma_server import free_port
from ui import uploads
from ui.app import exposure_warning, is_loopback, parse_auth, start

pytestmark = pytest.mark.integration
REFUSED = (ValueError, RuntimeError, OSError, httpx.HTTPError)




@pytest.fixture
def settings(tmp_path: Path):
    return load_settings(embedder="minilm-int8", collection="api-docs")


@pytest.fixture
def factory(embedder):
    def make(s, embedder_=None, **kw):
        return Citeqa(s, embedder=kw.get("embedder") or embedder)

    return make


def test_ask_endpoint_returns_the_ask_json_object(settings, factory, vostok_dir: Path) -> None:
    from gradio_client import Client

    qa = factory(settings)
    qa.ingest([vostok_dir], progress=False)
    direct = qa.ask("How many troops did China send?").to_dict()
    app, url = start(settings, "127.0.0.1", free_port(), factory=factory)
    try:
        client = Client(url, verbose=False)
        info = client.view_api(print_info=False, return_format="dict")
        assert "/ask" in info["named_endpoints"]
        assert set(info["named_endpoints"]) == {"/ask"}, "only the answer function is a public endpoint"
        out = client.predict("How many troops did China send?", api_name="/ask")
        assert set(out) >= {"answer", "short_answer", "abstained", "citations", "timings"}
        assert out["abstained"] is False and out["citations"]
        for key in ("question", "answer", "short_answer", "citations", "unsupported_sentences", "backend"):
            assert out[key] == direct[key], f"the API answers as `citeqa ask --json` does ({key})"
        assert set(out["timings"]) >= {"retrieve", "answer", "total"}
        c = out["citations"][0]
        text = (vostok_dir / "vostok-2022.txt").read_text(encoding="utf-8")
        assert Path(c["source"]).name == "vostok-2022.txt" and text[c["start"] : c["end"]] == c["text"]
        assert f"[{c['n']}]" in out["answer"]
        json.dumps(out)  # plain JSON all the way down

        out = client.predict("What is the population of Paris?", 3, api_name="/ask")
        assert out["abstained"] is True and out["citations"] == []

        with pytest.raises(AppError, match="question is empty"):
            client.predict("   ", api_name="/ask")
        with pytest.raises(AppError, match="Collection name"):
            client.predict("How many troops?", None, "../etc", api_name="/ask")
    finally:
        app.close()


def _status(url: str, data: bytes | None = None) -> int:
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as err:
        return err.code


def test_auth_refuses_requests_without_credentials(settings, factory) -> None:
    from gradio_client import Client

    app, url = start(settings, "127.0.0.1", free_port(), auth="ada:s3cret-pass", factory=factory)
    try:
        body = json.dumps({"data": ["How many troops did China send?"]}).encode()
        assert _status(url + "gradio_api/call/ask", body) in (401, 403)
        assert _status(url + "gradio_api/info") in (401, 403)
        assert _status(url + "config") in (401, 403)
        with pytest.raises(REFUSED):
            Client(url, verbose=False).predict("How many troops did China send?", api_name="/ask")
        with pytest.raises(REFUSED):
            Client(url, auth=("ada", "wrong"), verbose=False)
        # with the password the request reaches the app (which says the collection is still empty)
        client = Client(url, auth=("ada", "s3cret-pass"), verbose=False)
        with pytest.raises(AppError, match="is empty"):
            client.predict("How many troops did China send?", api_name="/ask")
    finally:
        app.close()


def test_serve_helpers() -> None:
    assert parse_auth(None) is None and parse_auth("a:b:c") == ("a", "b:c")
    for bad in ("nocolon", ":pw", "user:"):
        with pytest.raises(Exception, match="user:password"):
            parse_auth(bad)
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert exposure_warning("127.0.0.1", None) is None and exposure_warning("0.0.0.0", ("a", "b")) is None
    assert "WITHOUT a login" in exposure_warning("0.0.0.0", None)


def test_upload_names_cannot_escape_the_upload_folder(tmp_path: Path) -> None:
    for raw, want in [
        ("../../etc/passwd.txt", "passwd.txt"),
        ("/abs/path/notes.md", "notes.md"),
        ("..\\..\\win.txt", "win.txt"),
        ("a\x00b.txt", "ab.txt"),
        ("..", "upload"),
        (".hidden.txt", "hidden.txt"),
        ("x" * 500 + ".pdf", "x" * 116 + ".pdf"),
        ("rapport été.docx", "rapport été.docx"),
    ]:
        assert uploads.safe_name(raw) == want, raw
    src = tmp_path / "src.txt"
    src.write_text("hello", encoding="utf-8")
    folder = tmp_path / "up"
    placed = uploads.place(src, "../../evil.txt", folder, set())
    assert placed.dest.parent == folder.resolve() and placed.dest.name == "evil.txt"
    assert uploads.check(src, "evil.exe", 1.0).startswith("unsupported file type")
