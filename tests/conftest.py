"""Shared fixtures: every test gets its own data directory, model hubs are off, and the network is blocked
except loopback (so a test can never quietly depend on the outside world)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from evals.tools.shared import shared_dir

# tests marked `isolated` (native code that can crash: llama.cpp) run in a child process: tests/isolation.py
pytest_plugins = ["tests.isolation"]

REPO = Path(__file__).resolve().parents[1]
SHARED = shared_dir()  # ../shared, or CITEQA_SHARED_DIR
VOSTOK = SHARED / "corpora" / "vostok-2022"
DATASETS = SHARED / "datasets"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

_LOOPBACK = ("127.", "::1", "localhost", "0.0.0.0")
_real_connect = socket.socket.connect


def _guarded_connect(self: socket.socket, address):  # type: ignore[no-untyped-def]
    host = address[0] if isinstance(address, tuple) else str(address)
    if self.family in (socket.AF_INET, socket.AF_INET6) and not str(host).startswith(_LOOPBACK):
        raise RuntimeError(f"test tried to reach {host}: only loopback is allowed in tests")
    return _real_connect(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "citeqa-data"
    monkeypatch.setenv("CITEQA_DATA_DIR", str(data))
    for var in ("CITEQA_COLLECTION", "CITEQA_CHROMA", "CITEQA_LLM", "CITEQA_EMBEDDER"):
        monkeypatch.delenv(var, raising=False)
    return data


def need_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: clone the project with ../shared beside it to run this test")
    return path


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2 (int8 ONNX: the same model, 0.999 cosine agreement, loads in 0.3 s)."""
    from rag.embeddings import OnnxInt8Embedder

    return OnnxInt8Embedder()


@pytest.fixture(scope="session")
def st_embedder():
    """The real all-MiniLM-L6-v2 through sentence-transformers (torch)."""
    from rag.embeddings import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


@pytest.fixture
def vostok_dir() -> Path:
    return need_shared(VOSTOK)


def stop_process(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server a test started: SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def wait_until_up(proc: subprocess.Popen, url: str, log: Path, timeout: float = 180) -> None:
    """Wait until a server a test started answers ``url`` with 200; fail with the end of its log if it exits
    or does not answer within ``timeout`` seconds."""
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[:4]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)

