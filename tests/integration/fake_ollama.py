"""A small real HTTP server on loopback that speaks the part of the Ollama API that langchain-ollama uses:
``POST /api/chat`` (streamed NDJSON with chunked transfer encoding, or one JSON object with ``"stream": false``),
``GET /api/tags``, ``POST /api/show``, ``GET /api/version`` and ``GET /``. Unknown models get Ollama's 404.

The reply comes from ``responder(request_json) -> str``. The default one answers an answer prompt with the
first sentence of passage 1 followed by ``[1]`` (so its citation is checkable), and a rewrite prompt with the
follow-up question itself (both read from the last user message). Every request is recorded in
``server.requests`` as ``(path, json_body)``.

    with FakeOllama(models=("tiny",)) as server:
        ChatOllama(model="tiny", base_url=server.url)
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_PASSAGE = re.compile(r'<passage n="1"[^>]*>\s*(.*?)\s*</passage>', re.S)
_FOLLOW_UP = re.compile(r"^Follow-up question:\s*(.+)$", re.M)


def default_responder(request: dict[str, Any]) -> str:
    users = [str(m.get("content", "")) for m in request.get("messages") or [] if m.get("role") == "user"]
    prompt = users[-1] if users else ""
    follow = _FOLLOW_UP.search(prompt)
    if follow:
        return follow.group(1).strip()
    m = _PASSAGE.search(prompt)
    if not m:
        return "I could not find this in the documents."
    text = " ".join(m.group(1).split())
    first = re.split(r"(?<=[.!?])\s+", text, maxsplit=1)[0]
    return f"{first} [1]"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _pieces(text: str) -> list[str]:
    """Token-like pieces: words with their following whitespace."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


class FakeOllama:
    def __init__(
        self,
        models: Iterable[str] = ("fake-llm",),
        responder: Callable[[dict[str, Any]], str] = default_responder,
        delay: float = 0.0,
    ) -> None:
        self.models = tuple(models)
        self.responder = responder
        self.delay = delay  # seconds between streamed pieces
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def knows(self, model: str) -> bool:
        return model in self.models or any(model == f"{m}:latest" or m == f"{model}:latest" for m in self.models)

    def start(self) -> FakeOllama:
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-ollama", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOllama:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def chat_requests(self) -> list[dict[str, Any]]:
        return [body for path, body in self.requests if path == "/api/chat"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def _body(self) -> dict[str, Any]:
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                try:
                    return json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    return {}

            def _json(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                fake.requests.append((self.path, {}))
                if self.path == "/":
                    data = b"Ollama is running"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                elif self.path == "/api/version":
                    self._json(200, {"version": "0.9.0"})
                elif self.path == "/api/tags":
                    self._json(200, {"models": [_model_entry(m) for m in fake.models]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                body = self._body()
                fake.requests.append((self.path, body))
                model = str(body.get("model") or body.get("name") or "")
                if self.path not in ("/api/chat", "/api/show"):
                    self._json(404, {"error": "not found"})
                    return
                if not fake.knows(model):
                    self._json(404, {"error": f'model "{model}" not found, try pulling it first'})
                    return
                if self.path == "/api/show":
                    self._json(200, {"modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
                                     "details": _model_entry(model)["details"], "model_info": {},
                                     "capabilities": ["completion"]})
                    return
                self._chat(model, body)

            def _chat(self, model: str, body: dict[str, Any]) -> None:
                t0 = time.perf_counter_ns()
                text = fake.responder(body)
                options = body.get("options") or {}
                limit = options.get("num_predict")
                pieces = _pieces(text)
                if isinstance(limit, int) and limit > 0:
                    pieces = pieces[:limit]
                prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages") or [])
                final = {
                    "model": model,
                    "created_at": _now(),
                    "message": {"role": "assistant", "content": ""},
                    "done": True,
                    "done_reason": "stop" if len(pieces) == len(_pieces(text)) else "length",
                    "total_duration": 0,
                    "load_duration": 1000,
                    "prompt_eval_count": max(1, prompt_chars // 4),
                    "prompt_eval_duration": 1000,
                    "eval_count": len(pieces),
                    "eval_duration": 1000,
                }
                if body.get("stream", True) is False:
                    final["message"]["content"] = "".join(pieces)
                    final["total_duration"] = time.perf_counter_ns() - t0
                    self._json(200, final)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for piece in pieces:
                        self._chunk({"model": model, "created_at": _now(),
                                     "message": {"role": "assistant", "content": piece}, "done": False})
                        if fake.delay:
                            time.sleep(fake.delay)
                    final["total_duration"] = time.perf_counter_ns() - t0
                    self._chunk(final)
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
                    self.close_connection = True

            def _chunk(self, obj: dict[str, Any]) -> None:
                data = (json.dumps(obj) + "\n").encode()
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()

        return Handler


def _model_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": _now(),
        "size": 1,
        "digest": "0" * 64,
        "details": {"format": "gguf", "family": "fake", "families": ["fake"], "parameter_size": "1M",
                    "quantization_level": "Q4_K_M"},
    }
