"""Choose the extractive answerer's abstention threshold (``rag.extractive.MIN_EVIDENCE``) on public data.

    python -m evals.tools.calibrate_abstention [--squad PATH] [--out DIR] [--max-false 0.05]

The one score is the evidence sentence's score (``Citation.score`` of the first citation: W_SIM * cosine +
W_LEX * word share + ...), after the evidence check of ``rag.answer_check`` (names, numbers, counted thing and
the asked kind in the sentence). SQuAD 2.0 small has two articles: the threshold is chosen on one (the tune
split, Computational_complexity_theory), as the highest that abstains on at most ``--max-false`` of its
answerable questions; the other (Normans) is held out and only reported, as are both together. A precision/recall
plot of the trade-off (abstention on unanswerable questions against false abstention on answerable ones, each
split) is written to ``--out``, with the table as JSON.

Nothing from the data set is written anywhere but the temporary collection: it is read from ../shared
(``evals.tools.shared``) at run time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evals.tools.shared import datasets_dir

TUNE = "Computational_complexity_theory"
HELD_OUT = "Normans"
THRESHOLDS = [round(0.40 + 0.025 * i, 3) for i in range(29)]  # 0.40 .. 1.10


@dataclass(frozen=True)
class Scored:
    title: str
    answerable: bool
    score: float  # the evidence sentence's score; -inf when the answerer abstained before any threshold


def score_cases(squad: Path, work: Path) -> list[Scored]:
    """Import SQuAD into ``work``, ingest it, and answer every question with no threshold."""
    import math

    from evals.importers import run_import
    from evals.runner import eval_settings
    from ingest.compose import Citeqa
    from rag.extractive import ExtractiveAnswerer
    from rag.settings import load_settings

    out = work / "squad"
    run_import("squad", [squad], out)
    settings = eval_settings(load_settings(data_dir=work / "data"), out / "docs")
    app = Citeqa(settings)
    app.ingest([(out / "docs").resolve()], prune=True, progress=False)
    answerer = ExtractiveAnswerer(app.query_embedder, min_relevance=settings.min_relevance,
                                  min_evidence=-math.inf)
    rows = []
    for line in (out / "suite.jsonl").read_text().splitlines():
        case = json.loads(line)
        ans = answerer.answer(case["question"], app.retrieve(case["question"]))
        score = -math.inf if ans.abstained else max(c.score for c in ans.citations)
        rows.append(Scored(case.get("title", ""), bool(case["answerable"]), score))
    return rows


def sweep(rows: list[Scored]) -> list[dict[str, float]]:
    """Abstention on unanswerable and false abstention on answerable questions at each threshold."""
    table = []
    for t in THRESHOLDS:
        un = [r.score < t for r in rows if not r.answerable]
        ans = [r.score < t for r in rows if r.answerable]
        table.append({"threshold": t, "abstention": sum(un) / max(len(un), 1),
                      "false_abstention": sum(ans) / max(len(ans), 1)})
    return table


def choose(table: list[dict[str, float]], max_false: float) -> float:
    """The highest threshold of ``table`` whose false abstention is at most ``max_false`` (the lowest if none)."""
    ok = [row["threshold"] for row in table if row["false_abstention"] <= max_false]
    return max(ok) if ok else table[0]["threshold"]


def plot(tables: dict[str, list[dict[str, float]]], chosen: float, path: Path,
         title: str | None = None) -> None:
    """Abstention on unanswerable against false abstention on answerable questions, one line per split, the
    ``chosen`` threshold marked on each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, table in tables.items():
        ax.plot([r["false_abstention"] for r in table], [r["abstention"] for r in table], marker=".", label=name)
        at = next(r for r in table if r["threshold"] == chosen)
        ax.scatter([at["false_abstention"]], [at["abstention"]], s=60, zorder=3)
    ax.set_xlabel("false abstention (answerable questions abstained on)")
    ax.set_ylabel("abstention on unanswerable questions")
    ax.set_title(title or f"SQuAD 2.0 small: extractive abstention, MIN_EVIDENCE = {chosen}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", type=Path, default=datasets_dir() / "squad-v2-small" / "squad-v2-small.json")
    ap.add_argument("--out", type=Path, default=Path("bench-results/calibration"))
    ap.add_argument("--max-false", type=float, default=0.05)
    a = ap.parse_args(argv)
    if not a.squad.is_file():
        print(f"calibrate_abstention: {a.squad} is absent: put ../shared beside the clone or pass --squad",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = score_cases(a.squad, Path(tmp))
    tables = {f"tune: {TUNE}": sweep([r for r in rows if r.title == TUNE]),
              f"held out: {HELD_OUT}": sweep([r for r in rows if r.title == HELD_OUT]),
              "both": sweep(rows)}
    chosen = choose(tables[f"tune: {TUNE}"], a.max_false)
    a.out.mkdir(parents=True, exist_ok=True)
    plot(tables, chosen, a.out / "abstention.png")
    from rag.cpu import fingerprint

    (a.out / "abstention.json").write_text(json.dumps({"chosen": chosen, "max_false": a.max_false,
                                                       "machine": fingerprint(), "tables": tables}, indent=1))
    print(f"chosen MIN_EVIDENCE = {chosen} (the highest with false abstention <= {a.max_false} on {TUNE})")
    for name, table in tables.items():
        at = next(r for r in table if r["threshold"] == chosen)
        print(f"  {name:45s} abstention {at['abstention']:.3f}  false abstention {at['false_abstention']:.3f}")
    print(f"plot: {a.out / 'abstention.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
