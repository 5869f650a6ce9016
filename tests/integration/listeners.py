"""Endpoints on loopback that stand in for an attacker's server or a dead one: a plain TCP listener that accepts
and never answers (recording what it is sent), and an HTTP server that answers a chat request with a stream
that never ends (one small piece every ``every`` seconds)."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class SilentListener:
    """Accepts every connection, reads what it is sent into ``received``, never writes a byte."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._sock.getsockname()[1])
        self.received = bytearray()
        self.connections = 0
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="silent-listener", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def text(self) -> str:
        with self._lock:
            return self.received.decode("utf-8", "replace")

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._open.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.received.extend(data)

    def close(self) -> None:
        self._closed.set()
        self._sock.close()
        with self._lock:
            for conn in self._open:
                try:
                    conn.close()
                except OSError:
                    pass

    def __enter__(self) -> SilentListener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EndlessStream:
    """``POST /v1/chat/completions`` (OpenAI SSE) and ``POST /api/chat`` (Ollama NDJSON) answered with one "x"
    token every ``every`` seconds, for ever (until the client goes or the server closes)."""

    def __init__(self, every: float = 0.2) -> None:
        self.every = every
        self.pieces_sent = 0
        self._stop = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(n)
                ollama = self.path.startswith("/api/")
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson" if ollama else "text/event-stream")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while not outer._stop.is_set():
                        if ollama:
                            line = json.dumps({"model": "m", "created_at": "2026-01-01T00:00:00Z",
                                               "message": {"role": "assistant", "content": "x"}, "done": False})
                            body = (line + "\n").encode()
                        else:
                            chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
                                     "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
                            body = f"data: {json.dumps(chunk)}\n\n".encode()
                        self.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
                        self.wfile.flush()
                        outer.pieces_sent += 1
                        time.sleep(outer.every)
                except OSError:
                    return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        threading.Thread(target=self._server.serve_forever, name="endless-stream", daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> EndlessStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
