"""Start a real ``chroma run`` server on loopback for a test and stop it afterwards.

Use ``with chroma_server(tmp_path) as hostport: ...``, or wrap it in a fixture in the test module::

    @pytest.fixture(scope="module")
    def chroma_hostport(tmp_path_factory):
        with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as hostport:
            yield hostport

The server's chatty log goes to a file beside its data (a pipe could fill up and stall the server)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STARTUP_TIMEOUT_S = 60.0


def chroma_executable() -> str:
    """The ``chroma`` CLI of the running interpreter's environment (the venv), else one on PATH."""
    here = Path(sys.executable).parent / "chroma"
    if here.exists():
        return str(here)
    found = shutil.which("chroma")
    if not found:
        raise RuntimeError("the `chroma` command is not installed (it ships with the chromadb wheel)")
    return found


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _heartbeat_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextmanager
def chroma_server(data_dir: Path, timeout: float = STARTUP_TIMEOUT_S) -> Iterator[str]:
    """Run ``chroma run --path data_dir --port PORT`` on 127.0.0.1; yield "127.0.0.1:PORT" once it answers
    its heartbeat; kill it (and wait) on exit. Fails with the tail of the server log when it does not start."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = data_dir.parent / f"chroma-{port}.log"
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [chroma_executable(), "run", "--path", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # its own process group, so the kill below reaches any children too
        )
    try:
        deadline = time.monotonic() + timeout
        while not _heartbeat_ok(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                why = f"exited with {proc.returncode}" if proc.poll() is not None else f"not up after {timeout:.0f}s"
                raise RuntimeError(f"`chroma run` on port {port} {why}; log tail:\n{tail}")
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
