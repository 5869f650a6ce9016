"""`make bench-quick` keeps the bench harness working: it runs end to end on tiny sizes and writes every
field. Its figures are not asserted (they depend on the machine and mean nothing at these sizes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evals.tools.shared import SHARED_DIR_ENV
from tests.conftest import DATASETS, need_shared

# the whole quick bench runs in the fixture of the first test: allow for a busy machine
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(1800)]

SYSTEMS = ("stock", "citeqa-minilm", "citeqa-minilm-int8")


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    need_shared(DATASETS / "hotpotqa-100" / "corpus.json")
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_") or k == SHARED_DIR_ENV}
    r = subprocess.run([sys.executable, "-m", "evals.tools.bench", "--quick", "--out", str(out)], capture_output=True,
                       text=True, timeout=1700, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads((out / "bench.json").read_text(encoding="utf-8")), out


def _number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and v >= 0


def test_every_metric_for_every_system(quick: tuple[dict, Path]) -> None:
    from evals.tools.bench import metric_defs

    result, _ = quick
    assert result["format"] == "citeqa-bench/1" and result["quick"] is True
    sizes = result["config"]["sizes"]
    assert len(sizes) >= 2
    keys = {m.key for m in metric_defs(sizes)}
    assert set(result["systems"]) == set(SYSTEMS)
    for name in SYSTEMS:
        s = result["systems"][name]
        assert set(s) >= {"label", "ingest", "quality", "cold_start", "latency", "metrics"}
        assert set(s["metrics"]) == keys, name
        assert all(_number(v) for v in s["metrics"].values()), (name, s["metrics"])
        for q in ("recall@5", "mrr@10", "dense_recall@5", "dense_mrr@10"):
            assert 0 <= s["metrics"][q] <= 1
        assert set(s["ingest"]) >= {"documents", "characters", "chunks", "seconds", "chars_per_s", "chunks_per_s",
                                    "model_load_s", "peak_rss_mib"}
        assert s["ingest"]["chunks"] > 0 and s["ingest"]["characters"] == result["config"]["characters"]
        assert len(s["cold_start"]["runs_s"]) == result["config"]["cold_runs"]
        for n in sizes:
            lat = s["latency"][str(n)]
            assert lat["chunks"] == n and lat["queries"] == result["config"]["queries"]
            assert set(lat["retrieve"]) == set(lat["answer"]) == {"p50_ms", "p95_ms"}
    assert set(result["systems"]["citeqa-minilm"]["quality"]) == {"default", "no_second_round", "dense_only"}


def test_ratios_targets_and_the_int8_decision(quick: tuple[dict, Path]) -> None:
    result, _ = quick
    stock = result["systems"]["stock"]["metrics"]
    for name in SYSTEMS[1:]:
        ratios = result["ratios"][name]
        assert set(ratios) == set(stock)
        for key, v in ratios.items():
            assert _number(v) or (v is None and not stock[key]), (name, key, v)
        targets = result["targets"][name]
        assert len(targets) == 8
        for t in targets:
            assert set(t) == {"target", "value", "op", "bound", "met"}
            assert t["met"] in (True, False, None)
    d = result["int8_decision"]
    assert isinstance(d["recommend_int8_default"], bool) and isinstance(d["faster"], bool)
    assert set(d["quality"]) == {"recall@5", "mrr@10", "dense_recall@5", "dense_mrr@10"}
    assert d["current_default"] in ("minilm", "minilm-int8")


def test_machine_method_and_files(quick: tuple[dict, Path]) -> None:
    result, out = quick
    assert result["machine"]["cpus"] >= 1 and result["machine"]["versions"]["chromadb"]
    assert set(result["method"]) >= {"ingest", "quality", "cold_start", "synthetic", "latency", "memory"}
    assert result["synthetic"]["pool"]["documents"] == result["config"]["documents"]
    assert [b["chunks"] for b in result["synthetic"]["builds"]["stock"]] == result["config"]["sizes"]
    md = (out / "bench.md").read_text(encoding="utf-8")
    assert "| metric | stock |" in md and "minilm-int8 as the default" in md
    for m in ("ingest, characters/s", "recall@5", "cold start"):
        assert m in md
