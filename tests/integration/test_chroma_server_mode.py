"""Client/server mode end to end: ``CITEQA_CHROMA=host:port`` against a real ``chroma run`` started on a free
loopback port gives the same answers (short answer, cited spans) as the embedded store, through the CLI and
through ``Citeqa`` in process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.compose import Citeqa
from rag.settings import load_settings
from tests.integration.chroma_server import chroma_server

pytestmark = pytest.mark.integration

QUESTION = "How many troops did China send?"
CITEQA = [sys.executable, "-m", "ui.cli"]


@pytest.fixture(scope="module")
def chroma_hostport(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with chroma_server(tmp_path_factory.mktemp("chroma") / "data") as hostport:
        yield hostport


def cli(*args: str, env: dict[str, str]) -> dict[str, Any]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}
    e.update(env)
    r = subprocess.run([*CITEQA, *args, "--json"], capture_output=True, text=True, timeout=300, env=e)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def essentials(answer: dict[str, Any]) -> dict[str, Any]:
    """What a user sees of an answer, without timings and scores."""
    return {
        "answer": answer["answer"],
        "short_answer": answer["short_answer"],
        "abstained": answer["abstained"],
        "citations": [(c["n"], Path(c["source"]).name, c["start"], c["end"], c["text"]) for c in answer["citations"]],
    }


def server_collections(hostport: str) -> list[str]:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    host, port = hostport.rsplit(":", 1)
    client = chromadb.HttpClient(host=host, port=int(port), settings=ChromaSettings(anonymized_telemetry=False))
    return sorted(c if isinstance(c, str) else c.name for c in client.list_collections())


def test_cli_against_a_chroma_server_answers_like_the_embedded_store(
    chroma_hostport: str, vostok_dir: Path, tmp_path: Path
) -> None:
    answers = {}
    for mode, extra in (("embedded", {}), ("server", {"CITEQA_CHROMA": chroma_hostport})):
        env = {"CITEQA_DATA_DIR": str(tmp_path / mode), "CITEQA_COLLECTION": "vostok-cli",
               "CITEQA_EMBEDDER": "minilm-int8", **extra}
        report = cli("ingest", str(vostok_dir), env=env)
        assert len(report["added"]) == 1 and report["chunks"] > 0
        answers[mode] = cli("ask", QUESTION, env=env)
    assert "vostok-cli" in server_collections(chroma_hostport)
    assert not (tmp_path / "server" / "chroma").exists(), "server mode must not open an embedded store"
    assert answers["server"]["short_answer"] == "more than 2,000"
    assert essentials(answers["server"]) == essentials(answers["embedded"])
    text = (vostok_dir / "vostok-2022.txt").read_text(encoding="utf-8")
    for c in answers["server"]["citations"]:
        assert text[c["start"] : c["end"]] == c["text"]


def test_citeqa_in_process_against_a_chroma_server_answers_like_the_embedded_store(
    chroma_hostport: str, vostok_dir: Path, embedder, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    answers = {}
    for mode, chroma in (("embedded", None), ("server", chroma_hostport)):
        s = load_settings(data_dir=tmp_path / mode, collection="vostok-inproc", embedder="minilm-int8", chroma=chroma)
        qa = Citeqa(s, embedder=embedder)
        report = qa.ingest([vostok_dir], progress=False)
        assert report.ok and report.chunks > 0
        # a second ingest finds the file unchanged, in the server's collection as in the embedded one
        again = qa.ingest([vostok_dir], progress=False)
        assert len(again.unchanged) == 1 and not again.added
        answers[mode] = qa.ask(QUESTION).to_dict()
        answers[mode + "-count"] = qa.store.count()
    assert "vostok-inproc" in server_collections(chroma_hostport)
    assert answers["server-count"] == answers["embedded-count"]
    assert answers["server"]["short_answer"] == "more than 2,000"
    assert essentials(answers["server"]) == essentials(answers["embedded"])
    assert [r["chunk_id"] for r in answers["server"]["retrieved"]] == [
        r["chunk_id"] for r in answers["embedded"]["retrieved"]
    ]

    # a fresh process-like Citeqa on the same server and data dir sees the collection without ingesting
    s = load_settings(data_dir=tmp_path / "server", collection="vostok-inproc", embedder="minilm-int8",
                      chroma=chroma_hostport)
    assert essentials(Citeqa(s, embedder=embedder).ask(QUESTION).to_dict()) == essentials(answers["server"])
