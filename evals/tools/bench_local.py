"""``make bench``, the local model: time to first token and whole-answer latency of ``--llm local`` (and the
verifier's judgement of ``--verify local``) on this machine's cores.

    python -m evals.tools.bench_local --out DIR [--questions N]

The bundled ``docs/`` are ingested into a temporary data dir and the questions of ``evals/suites/docs.jsonl``
are asked through the same path as ``citeqa ask --llm local`` (streamed, so the first token is timed where a
user sees it). The first question is a warm-up and not counted: it loads the model and evaluates the worked
examples, which stay in llama.cpp's cache for every later question. Writes ``local.json`` and ``local.md`` under
``--out``; prints one line and exits 0 with ``skipped`` when the local model is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGETS = {"first_token_p50_ms": 2500.0, "answer_p50_ms": 8000.0}  # the budget on 2 cores


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def measure(n: int, work: Path) -> dict[str, Any]:
    """Ask ``n`` questions of the docs suite with ``--llm local`` and with ``--verify local``; the timings."""
    from ingest.compose import Citeqa
    from rag.settings import load_settings
    from rag.types import Answer

    questions = [json.loads(line)["question"] for line in (ROOT / "evals/suites/docs.jsonl").read_text().splitlines()
                 if line.strip()]
    out: dict[str, Any] = {}
    for name, extra in (("local", {"llm": "local"}), ("extractive+verify", {"verify": "local"})):
        s = load_settings(data_dir=work / "data", collection="bench-local", **extra)
        qa = Citeqa(s)
        qa.ingest([ROOT / "docs"], progress=False)
        t0 = time.perf_counter()
        list(qa.stream(questions[0]))  # warm-up: the model loads, the prompt's fixed head is evaluated
        warm = (time.perf_counter() - t0) * 1000
        first, whole, verify, abstained = [], [], [], 0
        for q in questions[1 : n + 1]:
            t0 = time.perf_counter()
            seen: float | None = None
            final: Answer | None = None
            for part in qa.stream(q):
                if isinstance(part, Answer):
                    final = part
                elif seen is None and part:
                    seen = (time.perf_counter() - t0) * 1000
            total = (time.perf_counter() - t0) * 1000
            whole.append(total)
            first.append(seen if seen is not None else total)
            if final is not None:
                abstained += final.abstained
                if "verify" in final.timings:
                    verify.append(final.timings["verify"])
        out[name] = {
            "questions": len(whole), "abstained": abstained, "warm_up_ms": round(warm),
            "first_token_p50_ms": _pct(first, 0.5), "first_token_p95_ms": _pct(first, 0.95),
            "answer_p50_ms": _pct(whole, 0.5), "answer_p95_ms": _pct(whole, 0.95),
            "verify_p50_ms": _pct(verify, 0.5),
        }
    return out


def render(result: dict[str, Any]) -> str:
    lines = [f"# Local model latency ({result['machine']})", "",
             "| | first token p50 / p95, ms | whole answer p50 / p95, ms | verifier p50, ms | abstained "
             "| warm-up, ms |",
             "|---|---|---|---|---|---|"]
    for name, r in result["systems"].items():
        def f(v: float | None) -> str:
            return "n/a" if v is None else f"{v:,.0f}"

        lines.append(f"| {name} | {f(r['first_token_p50_ms'])} / {f(r['first_token_p95_ms'])} | "
                     f"{f(r['answer_p50_ms'])} / {f(r['answer_p95_ms'])} | {f(r['verify_p50_ms'])} | "
                     f"{r['abstained']}/{r['questions']} | {f(r['warm_up_ms'])} |")
    lines += ["", "Targets for `local` on 2 cores: first token p50 <= 2,500 ms, whole answer p50 <= 8,000 ms. Peak "
              f"memory of the process (every context loaded): {result.get('peak_rss_mib', 0):,} MiB.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--questions", type=int, default=12)
    a = ap.parse_args(argv)
    from rag.errors import CiteqaError
    from rag.local_model import find_parts

    try:
        find_parts()
        import llama_cpp  # noqa: F401
    except (CiteqaError, ImportError) as exc:
        print(f"bench_local: skipped: {exc}", file=sys.stderr)
        return 0
    import os

    from rag.cpu import cpu_info, has_amx

    with tempfile.TemporaryDirectory(prefix="citeqa-bench-local-") as tmp:
        systems = measure(a.questions, Path(tmp))
    import resource

    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    model, flags = cpu_info()
    amx = "AMX" if has_amx(flags) else "no AMX"
    result = {"machine": f"{model}, {os.cpu_count()} cores, {amx}", "systems": systems, "targets": TARGETS,
              "peak_rss_mib": round(rss_mib)}
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "local.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (a.out / "local.md").write_text(render(result), encoding="utf-8")
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
