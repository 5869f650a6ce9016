"""Processes of a replicated deployment on loopback (docs/deployment.md): one ``chroma run`` and any number of
``citeqa serve`` replicas, each with a data directory of its own, started as child processes (native code that
crashes takes one child down, not the caller) and stopped on exit. Used by evals/tools/bench_replicas.py and by
tests/integration/test_replicas.py.

Each process's log goes to a file (a pipe could fill up and stall it)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
           "GRADIO_ANALYTICS_ENABLED": "False"}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=timeout)


@contextmanager
def _child(args: list[str], log: Path, url: str, env: Mapping[str, str], timeout: float) -> Iterator[subprocess.Popen]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(env),
                                cwd=REPO, start_new_session=True)  # its own group: the stop reaches its children
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {proc.returncode}" if proc.poll() is not None else f"not up after {timeout:.0f} s"
                raise RuntimeError(f"{' '.join(args[:4])} {why}; log tail:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield proc
    finally:
        _stop(proc)


def chroma_executable() -> str:
    here = Path(sys.executable).parent / "chroma"
    found = str(here) if here.exists() else shutil.which("chroma")
    if not found:
        raise RuntimeError("the `chroma` command is not installed (it ships with the chromadb wheel)")
    return found


@contextmanager
def chroma_run(path: Path, timeout: float = 60) -> Iterator[str]:
    """``chroma run --path PATH`` on a free loopback port; yields "127.0.0.1:PORT"."""
    port = free_port()
    path.mkdir(parents=True, exist_ok=True)
    with _child([chroma_executable(), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
                path.parent / f"chroma-{port}.log", f"http://127.0.0.1:{port}/api/v2/heartbeat",
                {**os.environ, **OFFLINE}, timeout):
        yield f"127.0.0.1:{port}"


@dataclass(frozen=True)
class Replica:
    url: str  # http://127.0.0.1:PORT/
    data_dir: Path
    log: Path


def replica_env(data_dir: Path, chroma: str, **settings: str) -> dict[str, str]:
    """The environment of one replica: no CITEQA_* of the caller's, the settings given (as CITEQA_NAME)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}
    env.update(OFFLINE)
    env.update(CITEQA_DATA_DIR=str(data_dir), CITEQA_CHROMA=chroma)
    env.update({f"CITEQA_{k.upper()}": v for k, v in settings.items()})
    return env


@contextmanager
def citeqa_serve(data_dir: Path, chroma: str, timeout: float = 240, **settings: str) -> Iterator[Replica]:
    """``citeqa serve`` on a free loopback port with its own data directory, against ``chroma``."""
    port = free_port()
    log = data_dir.parent / f"serve-{port}.log"
    url = f"http://127.0.0.1:{port}/"
    with _child([sys.executable, "-m", "ui.cli", "serve", "--port", str(port)], log, url,
                replica_env(data_dir, chroma, **settings), timeout):
        yield Replica(url, data_dir, log)
