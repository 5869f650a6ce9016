"""The real app for browser tests: `citeqa serve` in a subprocess on a free loopback port over a temp data
directory, and Debian's chromium driven by Playwright (headless). Screenshots go to test-output/e2e/."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import stop_process, wait_until_up
from tests.integration.chroma_server import free_port

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-output" / "e2e"
CHROMIUM = "/usr/bin/chromium"
MAX_FILE_MB = 0.5  # small, so the over-the-limit upload is small too

# Records, in window.__lengths, every length the streaming answer reaches (the cursor sits in the growing message).
WATCH_STREAM_JS = """() => {
    window.__lengths = new Set();
    new MutationObserver(() => {
        const c = document.querySelector('#cq-chat .cq-cursor');
        if (c) window.__lengths.add(c.parentElement.innerText.length);
    }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@dataclass
class Server:
    url: str
    data_dir: Path
    collection: str
    log: Path
    ollama: Any = None  # the FakeOllama the server offers as its answer backend "tiny"

    @property
    def uploads(self) -> Path:
        return self.data_dir / "uploads" / self.collection

    def feedback_file(self) -> Path:
        return self.data_dir / "feedback" / f"{self.collection}.jsonl"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("e2e-data")
    port = free_port()
    SHOTS.mkdir(parents=True, exist_ok=True)
    log = SHOTS / f"server-{port}.log"
    env = {
        **os.environ,
        "CITEQA_DATA_DIR": str(data),
        "CITEQA_EMBEDDER": "minilm-int8",
        "CITEQA_MAX_FILE_MB": str(MAX_FILE_MB),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ANONYMIZED_TELEMETRY": "False",
    }
    for var in ("CITEQA_COLLECTION", "CITEQA_CHROMA", "CITEQA_LLM", "CITEQA_AUTH", "CITEQA_BACKENDS",
                "CITEQA_BACKENDS_FILE"):
        env.pop(var, None)
    from tests.integration.fake_ollama import FakeOllama

    ollama = FakeOllama(models=("tiny-llm",), delay=0.15).start()  # the operator's backend, offered by name
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ui.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
             "--collection", "e2e-docs", "--backend", f"tiny=ollama:tiny-llm@127.0.0.1:{ollama.port}"],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(proc, url, log, timeout=120)
        yield Server(url=url, data_dir=data, collection="e2e-docs", log=log, ollama=ollama)
    finally:
        stop_process(proc, timeout=20)
        ollama.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("chromium is not installed: `make browser` (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        yield b
        b.close()


def open_page(browser, server: Server, width: int = 1400, height: int = 900):  # -> playwright Page
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url, wait_until="load")
    page.wait_for_selector("#cq-chat")
    # the page's load event has refreshed the status from the session: a later event's output is not overwritten
    page.wait_for_selector("#cq-status .cq-status[data-live]")
    return page


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return bool(rep and rep.failed)


@pytest.fixture
def page(browser, server: Server, request: pytest.FixtureRequest):
    pg = open_page(browser, server)
    yield pg
    if failed(request):  # what the page looked like when the test failed
        shot(pg, f"FAILED-{request.node.name}")
    pg.context.close()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
