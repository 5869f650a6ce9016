"""`citeqa eval` over the real pipeline (real model, real Chroma): a tiny suite run twice gives identical
report.json metrics, the second run reuses the collection, and the support check is the real one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

pytestmark = pytest.mark.integration

DOCS = {
    "vostok.txt": (
        "Vostok 2022 was a strategic military exercise held in Russia's Eastern Military District from 1 to 7 "
        "September 2022. More than 50,000 troops and over 5,000 pieces of military equipment took part. "
        "China sent more than 2,000 troops to the exercise.\n\n"
        "The naval part of the exercise took place in the Sea of Japan and the Sea of Okhotsk."
    ),
    "bees.md": (
        "# Honey bees\n\nA honey bee colony has one queen. Worker bees collect nectar and pollen from flowers. "
        "The queen can lay up to 2,000 eggs a day in summer.\n"
    ),
    "notes/bread.txt": (
        "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria. "
        "The dough usually rises for 8 to 12 hours."
    ),
}
CASES = [
    {"id": "china", "question": "How many troops did China send to Vostok 2022?",
     "answers": ["more than 2,000", "2,000"], "sources": ["vostok.txt"], "answerable": True,
     "passages": ["China sent more than 2,000 troops to the exercise."]},
    {"id": "seas", "question": "Where did the naval part of the Vostok exercise take place?",
     "answers": ["the Sea of Japan and the Sea of Okhotsk"], "sources": ["vostok.txt"], "answerable": True},
    {"id": "eggs", "question": "How many eggs can a queen bee lay per day?", "answers": ["up to 2,000", "2,000"],
     "sources": ["bees.md"], "answerable": True},
    {"id": "rise", "question": "How long does sourdough dough rise?", "answers": ["8 to 12 hours"],
     "sources": ["notes/bread.txt"], "answerable": True},
    {"id": "mars", "question": "What is the boiling point of liquid nitrogen on Mars?", "answers": [],
     "sources": [], "answerable": False},
]


@pytest.fixture
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    docs = tmp_path / "docs"
    for name, text in DOCS.items():
        (docs / name).parent.mkdir(parents=True, exist_ok=True)
        (docs / name).write_text(text, encoding="utf-8")
    suite = tmp_path / "suite.jsonl"
    suite.write_text("".join(json.dumps(c) + "\n" for c in CASES), encoding="utf-8")
    return docs, suite


def test_tiny_suite_twice_gives_identical_metrics(tiny: tuple[Path, Path], tmp_path: Path, embedder: Any) -> None:
    pytest.importorskip("ingest.compose", reason="ingest.compose is not written yet")
    for mod in ("rag.store", "rag.retrieve", "rag.extractive", "ingest.loaders", "ingest.chunking"):
        pytest.importorskip(mod, reason=f"{mod} is not written yet")
    from evals.cli import build_eval_app
    from ingest.compose import Citeqa

    app = typer.Typer()

    @app.command()
    def ask() -> None:
        pass

    app.add_typer(build_eval_app(app_factory=lambda s: Citeqa(s, embedder=embedder)), name="eval")
    docs, suite = tiny
    reports = []
    for name in ("first", "second"):
        out = tmp_path / name
        res = CliRunner().invoke(app, ["eval", str(suite), "--docs", str(docs), "--out", str(out), "--embedder",
                                       "minilm-int8", "--no-progress"], env={"COLUMNS": "160"})
        assert res.exit_code == 0, res.output
        reports.append(json.loads((out / "report.json").read_text()))
        assert {p.name for p in out.iterdir()} >= {"report.json", "cases.jsonl", "report.md", "report.html"}
    first, second = reports
    assert first["metrics"] == second["metrics"]
    assert first["suite"]["hash"] == second["suite"]["hash"] and first["docs"]["hash"] == second["docs"]["hash"]
    assert first["docs"]["collection"] == second["docs"]["collection"]
    assert len(first["ingest"]["added"]) == 3
    assert second["ingest"]["added"] == [] and len(second["ingest"]["unchanged"]) == 3  # the collection is reused
    m = first["metrics"]
    assert m["hit@k"] == 1.0  # four distinct topics: retrieval must find each one
    assert m["abstention_rate"] is not None and m["false_abstention_rate"] is not None
    assert first["counts"] == second["counts"]
    if first["support_method"].get("checker"):
        assert first["support_method"]["checker"].startswith("rag.support.")
        assert m["support_rate"] is not None
    cases = [json.loads(x) for x in (tmp_path / "first" / "cases.jsonl").read_text().splitlines()]
    assert [c["id"] for c in cases] == [c["id"] for c in CASES]
    china = cases[0]
    assert china["retrieved_sources"][0] == "vostok.txt"
    assert all(not Path(s).is_absolute() for c in cases for s in c["retrieved_sources"])
