"""The support check measured on sentences a real model wrote: labelled pairs from a ``citeqa eval --llm local`` run.

    citeqa eval SUITE --docs DOCS --llm local --out RUN          # once per split (minutes per question on 2 cores)
    python -m evals.tools.calibrate_support_generated RUN [RUN ...] --docs DOCS [--tune PREFIX] [--out DIR]

``calibrate_support`` builds its claims from questions; this one takes the claims the model actually made. From
each answered case with gold answers (``cases.jsonl``):

- **supported**: a sentence of the model's answer that holds a gold answer, paired with the passage(s) it cites
  when they hold that gold answer too (a true claim over evidence that states it);
- **swapped**: the same sentence with the gold answer replaced by another question's answer from the same
  article, of the same kind (a number for a number, a name for a name) and absent from the evidence: the claim
  a model makes when it picks the wrong value from its passages.

The cited passage is the retrieved chunk of the case that contains the citation's span, read from ``DOCS``. The
check (``rag.support.SupportChecker``, its shipped thresholds) is scored on both splits: ``--tune`` names the
article (the first gold source's name up to its last ``-``) whose pairs the thresholds are swept on, the others
are held out and only reported. Nothing from the data is written, only the figures (``--out``:
``support_generated.json``).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evals.tools.calibrate_support import _decide, _has_digit, _norm, prf, sweep


@dataclass(frozen=True)
class GenPair:
    claim: str
    evidence: tuple[str, ...]
    label: bool
    kind: str  # supported | swapped
    split: str  # the article


def article(case: dict) -> str:
    """The article of a case: its first gold source's file name up to the last ``-`` ("Normans-004.txt" ->
    "Normans")."""
    sources = case.get("gold_sources") or [""]
    return Path(sources[0]).stem.rpartition("-")[0] or Path(sources[0]).stem


def _contains(text: str, value: str) -> bool:
    v = _norm(value)
    return bool(v) and f" {v} " in f" {_norm(text)} "


def cited_chunks(case: dict, docs: Path) -> dict[int, str]:
    """Citation number -> the text of the retrieved chunk that holds its span (read from the document)."""
    out: dict[int, str] = {}
    texts: dict[str, str] = {}
    for c in case.get("citations") or []:
        for r in case.get("retrieved") or []:
            if r["source"] == c["source"] and r["start"] <= c["start"] and c["end"] <= r["end"]:
                path = Path(c["source"]) if Path(c["source"]).is_absolute() else docs / c["source"]
                if c["source"] not in texts:
                    texts[c["source"]] = path.read_text(encoding="utf-8")
                out[int(c["n"])] = texts[c["source"]][r["start"] : r["end"]]
                break
    return out


def _swap(sentence: str, gold: str, others: Sequence[str], evidence: str, rng: random.Random) -> str | None:
    """``sentence`` with ``gold`` replaced by one of ``others`` of the same kind that the evidence lacks."""
    m = re.search(re.escape(gold), sentence, re.I)
    if m is None:
        return None
    pool = [o for o in others if _has_digit(o) == _has_digit(gold) and _norm(o) and not _contains(evidence, o)
            and not _contains(o, gold) and not _contains(gold, o) and len(o.split()) <= 6]
    if not pool:
        return None
    return sentence[: m.start()] + rng.choice(pool) + sentence[m.end() :]


def pairs_from_cases(cases: Iterable[dict], docs: Path, seed: int = 0) -> list[GenPair]:
    from rag.citations import parse_markers, strip_markers

    cases = [c for c in cases if c.get("answerable") and not c.get("abstained") and c.get("gold_answers")]
    answers_by_article: dict[str, list[str]] = {}
    for c in cases:
        answers_by_article.setdefault(article(c), []).extend(c["gold_answers"][:1])
    rng = random.Random(seed)
    out: list[GenPair] = []
    for case in cases:
        chunks = cited_chunks(case, docs)
        if not chunks:
            continue
        split = article(case)
        others = [a for a in answers_by_article[split] if a not in case["gold_answers"]]
        for ms in parse_markers(case["answer"], max(int(c["n"]) for c in case["citations"])):
            evidence = tuple(chunks[n] for n in ms.cited if n in chunks)
            claim = strip_markers(ms.text).strip()
            if not evidence or not claim:
                continue
            ev = "\n".join(evidence)
            gold = next((g for g in case["gold_answers"] if _contains(claim, g) and _contains(ev, g)), None)
            if gold is None:
                continue
            out.append(GenPair(claim, evidence, True, "supported", split))
            swapped = _swap(claim, gold, others, ev, rng)
            if swapped is not None:
                out.append(GenPair(swapped, evidence, False, "swapped", split))
    return out


def _score(pairs: Sequence[GenPair], feats: Sequence, ot: float, st: float | None) -> dict:
    labels = [p.label for p in pairs]
    pred = [_decide(f, ot, st) for f in feats]
    p, r, f1 = prf(pred, labels)
    return {"pairs": len(pairs), "supported": sum(labels), "swapped": len(labels) - sum(labels),
            "precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3),
            "swapped_flagged": round(sum(not x for x, g in zip(pred, labels, strict=True) if not g)
                                     / max(1, len(labels) - sum(labels)), 3)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path, help="citeqa eval output folders (cases.jsonl), --llm local")
    ap.add_argument("--docs", type=Path, required=True, help="the documents the runs answered over")
    ap.add_argument("--tune", default=None, help="the article whose pairs the thresholds are swept on")
    ap.add_argument("--out", type=Path, default=None, help="folder for support_generated.json")
    ap.add_argument("--judge", choices=("off", "local"), default="off",
                    help="local: also ask the local model whether each claim's passage states it (rag.verify), "
                         "alone and beside the offline check; its threshold is chosen on --tune")
    args = ap.parse_args(argv)

    from rag.embeddings import make_embedder
    from rag.support import OVERLAP_THRESHOLD, SIMILARITY_THRESHOLD, SupportChecker

    cases: list[dict] = []
    for run in args.runs:
        path = run / "cases.jsonl"
        if not path.is_file():
            print(f"calibrate_support_generated: error: {path} not found: pass a `citeqa eval` output folder",
                  file=sys.stderr)
            return 2
        cases += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    pairs = pairs_from_cases(cases, args.docs)
    if not pairs:
        print("calibrate_support_generated: error: no labelled pairs (no answered case cites a gold answer)",
              file=sys.stderr)
        return 2
    checker = SupportChecker(make_embedder("minilm-int8"))
    feats = checker.features([(p.claim, p.evidence) for p in pairs])
    splits = sorted({p.split for p in pairs})
    tune = args.tune or splits[0]
    result: dict = {"shipped": {"overlap": OVERLAP_THRESHOLD, "similarity": SIMILARITY_THRESHOLD}, "tune": tune,
                    "splits": {}}
    idx_tune = [i for i, p in enumerate(pairs) if p.split == tune]
    ot, st, _ = sweep([feats[i] for i in idx_tune], [pairs[i].label for i in idx_tune], use_similarity=True)
    result["chosen_on_tune"] = {"overlap": ot, "similarity": st}
    print(f"{len(pairs)} pairs from {len(cases)} cases; tuned on {tune}: overlap {ot}, similarity {st} "
          f"(shipped {OVERLAP_THRESHOLD}, {SIMILARITY_THRESHOLD})")
    for split in [*splits, "all"]:
        idx = [i for i, p in enumerate(pairs) if split in ("all", p.split)]
        sub, fs = [pairs[i] for i in idx], [feats[i] for i in idx]
        row = {"shipped": _score(sub, fs, OVERLAP_THRESHOLD, SIMILARITY_THRESHOLD),
               "chosen": _score(sub, fs, ot, st), "role": "tune" if split == tune else "held out"}
        if split == "all":
            row["role"] = "both"
        result["splits"][split] = row
        for name in ("shipped", "chosen"):
            s = row[name]
            print(f"  {split} ({row['role']}), {name}: {s['pairs']} pairs ({s['supported']} supported): "
                  f"precision {s['precision']:.3f} recall {s['recall']:.3f} F1 {s['f1']:.3f}, "
                  f"swapped claims flagged {s['swapped_flagged']:.3f}")
    if args.judge == "local":
        judged = _judge_local(pairs, [_decide(f, OVERLAP_THRESHOLD, SIMILARITY_THRESHOLD) for f in feats], tune)
        if judged is None:
            return 2
        result["judge_local"] = judged
    from rag.cpu import fingerprint

    result["machine"] = fingerprint()
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "support_generated.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out / 'support_generated.json'}")
    return 0


def _shown_spans(pair: GenPair, matcher: Any) -> list[str]:
    """What ``--verify claims`` judges a claim against: the sentence of each cited chunk that its citation shows
    (the answer path's span matcher)."""
    from rag.types import Chunk

    out = []
    for i, text in enumerate(pair.evidence):
        chunk = Chunk(id=f"{hash(text)}-{i}", source="", text=text, start=1, end=1 + len(text))
        a, b = matcher.best_span(pair.claim, chunk)
        out.append(text[a:b])
    return out


def _judge_local(pairs: Sequence[GenPair], offline: Sequence[bool], tune: str) -> dict | None:
    """The local model's claim judgement (``LlamaVerifier.judge_claim``, against the sentences the citations show)
    on every pair: its threshold chosen on
    ``tune`` (highest F1; ties: the higher threshold), then scored per split alone and beside the offline check
    (supported only when both say so), with the cost of a judgement."""
    from evals.tools.calibrate_support import _grid
    from rag.embeddings import make_embedder
    from rag.errors import CiteqaError
    from rag.generative import _SpanMatcher
    from rag.llm import load_local_llama
    from rag.settings import load_settings
    from rag.verify import VERIFY_N_CTX, LlamaVerifier

    matcher = _SpanMatcher(make_embedder("minilm-int8"))
    try:
        verifier = LlamaVerifier(load_local_llama(load_settings(), n_ctx=VERIFY_N_CTX))
    except (CiteqaError, ImportError) as exc:
        print(f"calibrate_support_generated: error: --judge local: {exc}", file=sys.stderr)
        return None
    verifier.judge_claim("warm-up", ["warm-up"])  # loads the model and evaluates the instructions once
    judged = [verifier.judge_claim(p.claim, _shown_spans(p, matcher)) for p in pairs]
    probs = [j.p_yes for j in judged]
    labels = [p.label for p in pairs]
    tune_idx = [i for i, p in enumerate(pairs) if p.split == tune]
    best: tuple | None = None
    for t in _grid(0.05, 0.95, 0.05):
        score = prf([probs[i] >= t for i in tune_idx], [labels[i] for i in tune_idx])
        key = (round(score[2], 6), t)
        if best is None or key > best[0]:
            best = (key, t)
    assert best is not None
    threshold = best[1]
    ms = sorted(j.ms for j in judged)
    out: dict = {"threshold_chosen_on_tune": threshold, "judgement_ms_p50": round(ms[len(ms) // 2], 1),
                 "judgement_ms_p95": round(ms[min(len(ms) - 1, int(0.95 * (len(ms) - 1)))], 1), "splits": {}}
    print(f"  local model judge: threshold {threshold} chosen on {tune}; a judgement costs "
          f"{out['judgement_ms_p50']:.0f} ms p50 / {out['judgement_ms_p95']:.0f} ms p95")
    for split in [*sorted({p.split for p in pairs}), "all"]:
        idx = [i for i, p in enumerate(pairs) if split in ("all", p.split)]
        row = {}
        for name, pred in (("offline", [offline[i] for i in idx]),
                           ("model", [probs[i] >= threshold for i in idx]),
                           ("offline_and_model", [offline[i] and probs[i] >= threshold for i in idx])):
            gold = [labels[i] for i in idx]
            p, r, f1 = prf(pred, gold)
            flagged = sum(not x for x, g in zip(pred, gold, strict=True) if not g) / max(1, len(gold) - sum(gold))
            row[name] = {"precision": round(p, 3), "recall": round(r, 3), "f1": round(f1, 3),
                         "swapped_flagged": round(flagged, 3)}
            print(f"  {split} ({'tune' if split == tune else 'held out' if split != 'all' else 'both'}), {name}: "
                  f"precision {p:.3f} recall {r:.3f} F1 {f1:.3f}, swapped claims flagged {flagged:.3f}")
        out["splits"][split] = row
    return out


if __name__ == "__main__":
    raise SystemExit(main())
