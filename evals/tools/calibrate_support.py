"""Choose the thresholds of rag.support.SupportChecker on labelled claim/evidence pairs built from public data.

    python -m evals.tools.calibrate_support [--squad PATH] [--hotpot DIR]

Claims are made from questions: the question with its gold answer put in place of the wh-phrase ("In what
country is Normandy located?" + "France" -> "In France is Normandy located."). Not fluent, but it has the words
and the meaning of an answer sentence, and it is never a verbatim copy of the passage, so it exercises the
paraphrase path (the verbatim path needs no threshold).

Pairs, one positive to two negatives, at two evidence granularities (one sentence, as the extractive answerer
cites; a whole paragraph, as a generative answer's citation is a chunk):
- positive: the claim vs the sentence holding the gold answer (SQuAD) or the supporting facts (HotpotQA), and
  vs the whole paragraph;
- hard negative: the claim vs the sentence(s) of the same paragraph(s) sharing most words with it but not the
  answer, and vs another paragraph of the same article;
- wrong answer: the claim with another question's answer from the same article substituted (a number for a
  number, words for words), vs the same evidence as the positive.

The thresholds are swept on SQuAD 2.0 small (the answerable questions) and the pair maximising F1 of
"supported" is printed; HotpotQA-100 is held out and only reported. Nothing from the data sets is written
anywhere: they are read from ../shared (``evals.tools.shared``) at run time.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from evals.tools.shared import datasets_dir

_AUX = r"(?:is|are|was|were|did|does|do|has|had|have|can|could|will|would|should)"
_WH_NOUN = re.compile(r"\b(?:what|which|whose)\s+\w+(?:\s+\w+)?\s+(?=" + _AUX + r"\b)", re.I)
_HOW = re.compile(r"\bhow\s+(?:many|much|long|old|far|large|big)\b", re.I)
_WH = re.compile(r"\b(?:who|whom|whose|what|which|when|where|why|how)\b", re.I)


def claim_from_question(question: str, answer: str) -> str:
    """The question with ``answer`` in place of its wh-phrase, as a statement."""
    q = question.strip().rstrip("?").strip()
    for pat in (_HOW, _WH_NOUN, _WH):
        m = pat.search(q)
        if m:
            q = q[: m.start()] + answer + (" " if pat is _WH_NOUN else "") + q[m.end() :]
            break
    else:
        q = f"{q}: {answer}"
    q = re.sub(r"\s+", " ", q).strip()
    return q[0].upper() + q[1:] + "."


@dataclass(frozen=True)
class Pair:
    claim: str
    evidence: tuple[str, ...]
    label: bool
    kind: str  # positive | hard-negative | wrong-answer
    grain: str  # sentence | paragraph


def _norm(s: str) -> str:
    return " ".join(re.findall(r"\w+", s.lower()))


def _has_digit(s: str) -> bool:
    return any(ch.isdigit() for ch in s)


def _best_other(claim: str, candidates: Sequence[str], banned: Sequence[str]) -> str | None:
    """The candidate sharing most content words with ``claim`` that holds none of the ``banned`` answers."""
    from rag.support import content_words

    cw = set(content_words(claim))
    best, best_n = None, -1
    for c in candidates:
        nc = " " + _norm(c) + " "
        if any(" " + _norm(b) + " " in nc for b in banned if _norm(b)):
            continue
        n = len(cw & set(content_words(c)))
        if n > best_n:
            best, best_n = c, n
    return best


def _wrong_answer(i: int, answers: Sequence[str], gold: Sequence[str], evidence: str) -> str | None:
    """Another question's answer, nearest in order, of the same kind (number or words), absent from evidence."""
    ev = " " + _norm(evidence) + " "
    golds = {_norm(g) for g in gold}
    want_digit = _has_digit(gold[0])
    for d in range(1, len(answers)):
        for j in (i + d, i - d):
            if 0 <= j < len(answers):
                a = answers[j]
                if _has_digit(a) == want_digit and _norm(a) and _norm(a) not in golds and f" {_norm(a)} " not in ev:
                    return a
    return None


def squad_pairs(path: Path) -> list[Pair]:
    from rag.sentences import split_sentences

    data = json.loads(path.read_text(encoding="utf-8"))
    pairs: list[Pair] = []
    for article in data["data"]:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        qas = [
            (pi, qa)
            for pi, p in enumerate(article["paragraphs"])
            for qa in p["qas"]
            if not qa.get("is_impossible") and qa.get("answers")
        ]
        firsts = [qa["answers"][0]["text"] for _, qa in qas]
        for i, (pi, qa) in enumerate(qas):
            ctx = paragraphs[pi]
            ans = qa["answers"][0]
            spans = split_sentences(ctx)
            at = [s for s in spans if s[0] <= ans["answer_start"] < s[1]]
            if not at or ans["answer_start"] + len(ans["text"]) > at[0][1]:
                continue  # answer not inside one sentence: the splitter disagrees with the annotation
            gold_sent = ctx[at[0][0] : at[0][1]]
            golds = [a["text"] for a in qa["answers"]]
            claim = claim_from_question(qa["question"], ans["text"])
            pairs.append(Pair(claim, (gold_sent,), True, "positive", "sentence"))
            pairs.append(Pair(claim, (ctx,), True, "positive", "paragraph"))
            other = _best_other(claim, [ctx[a:b] for a, b in spans if (a, b) != at[0]], golds)
            if other:
                pairs.append(Pair(claim, (other,), False, "hard-negative", "sentence"))
            other_p = _best_other(claim, [p for j, p in enumerate(paragraphs) if j != pi], golds)
            if other_p:
                pairs.append(Pair(claim, (other_p,), False, "hard-negative", "paragraph"))
            wrong = _wrong_answer(i, firsts, golds, ctx)
            if wrong:
                bad = claim_from_question(qa["question"], wrong)
                pairs.append(Pair(bad, (gold_sent,), False, "wrong-answer", "sentence"))
                pairs.append(Pair(bad, (ctx,), False, "wrong-answer", "paragraph"))
    return pairs


def hotpot_pairs(folder: Path) -> list[Pair]:
    questions = json.loads((folder / "questions.json").read_text(encoding="utf-8"))
    qs = [q for q in questions if q["answer"].lower() not in ("yes", "no")]
    answers = [q["answer"] for q in qs]
    pairs: list[Pair] = []
    for i, q in enumerate(qs):
        ctx = {t: [s.strip() for s in sents] for t, sents in q["context"]}
        facts = [ctx[t][k] for t, k in q["supporting_facts"] if t in ctx and k < len(ctx[t])]
        if not facts:
            continue
        titles = list(dict.fromkeys(t for t, _ in q["supporting_facts"] if t in ctx))
        claim = claim_from_question(q["question"], q["answer"])
        pairs.append(Pair(claim, tuple(facts), True, "positive", "sentence"))
        paras = tuple(" ".join(ctx[t]) for t in titles)
        pairs.append(Pair(claim, paras, True, "positive", "paragraph"))
        fact_set = set(facts)
        rest = [s for t in titles for s in ctx[t] if s not in fact_set]
        picked: list[str] = []
        for _ in facts:
            o = _best_other(claim, [s for s in rest if s not in picked], [q["answer"]])
            if o:
                picked.append(o)
        if picked:
            pairs.append(Pair(claim, tuple(picked), False, "hard-negative", "sentence"))
        distract = [" ".join(s) for t, s in q["context"] if t not in titles]
        o_par = [p for p in (_best_other(claim, distract, [q["answer"]]),) if p]
        if o_par:
            pairs.append(Pair(claim, tuple(o_par), False, "hard-negative", "paragraph"))
        wrong = _wrong_answer(i, answers, [q["answer"]], " ".join(paras))
        if wrong:
            bad = claim_from_question(q["question"], wrong)
            pairs.append(Pair(bad, tuple(facts), False, "wrong-answer", "sentence"))
            pairs.append(Pair(bad, paras, False, "wrong-answer", "paragraph"))
    return pairs


def prf(pred: Sequence[bool], gold: Sequence[bool]) -> tuple[float, float, float]:
    tp = sum(p and g for p, g in zip(pred, gold, strict=True))
    fp = sum(p and not g for p, g in zip(pred, gold, strict=True))
    fn = sum(g and not p for p, g in zip(pred, gold, strict=True))
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _grid(lo: float, hi: float, step: float) -> list[float]:
    return [round(lo + i * step, 4) for i in range(int(round((hi - lo) / step)) + 1)]


def sweep(feats, labels, use_similarity: bool):  # -> (overlap_t, similarity_t, (p, r, f1))
    best = None
    for ot in _grid(0.0, 1.0, 0.05):
        for st in _grid(0.0, 0.95, 0.025) if use_similarity else [None]:
            pred = [_decide(f, ot, st) for f in feats]
            score = prf(pred, labels)
            # highest F1; ties go to the stricter (higher precision) pair
            key = (round(score[2], 6), round(score[0], 6))
            if best is None or key > best[0]:
                best = (key, ot, st, score)
    assert best is not None
    return best[1], best[2], best[3]


def _decide(f, overlap_t: float, sim_t: float | None) -> bool:
    if f.verbatim:
        return True
    if not f.numbers_ok or not f.names_ok or f.overlap < overlap_t:
        return False
    return sim_t is None or (f.similarity is not None and f.similarity >= sim_t)


def report(name: str, pairs: Sequence[Pair], feats, ot: float, st: float | None) -> None:
    labels = [p.label for p in pairs]
    pred = [_decide(f, ot, st) for f in feats]
    p, r, f1 = prf(pred, labels)
    n_pos = sum(labels)
    print(f"  {name}: {len(pairs)} pairs ({n_pos} supported): precision {p:.3f} recall {r:.3f} F1 {f1:.3f}")
    for kind in ("positive", "hard-negative", "wrong-answer"):
        for grain in ("sentence", "paragraph"):
            idx = [i for i, q in enumerate(pairs) if q.kind == kind and q.grain == grain]
            if idx:
                acc = sum(pred[i] == labels[i] for i in idx) / len(idx)
                print(f"    {kind:13s} {grain:9s} n={len(idx):4d} correct {acc:.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    datasets = datasets_dir()
    ap.add_argument("--squad", type=Path, default=datasets / "squad-v2-small" / "squad-v2-small.json")
    ap.add_argument("--hotpot", type=Path, default=datasets / "hotpotqa-100")
    args = ap.parse_args(argv)
    if not args.squad.exists():
        print(f"{args.squad} is absent: clone the project with ../shared beside it or set CITEQA_SHARED_DIR",
              file=sys.stderr)
        return 2
    from rag.embeddings import OnnxInt8Embedder
    from rag.support import SupportChecker

    t0 = time.perf_counter()
    tune = squad_pairs(args.squad)
    held = hotpot_pairs(args.hotpot) if (args.hotpot / "questions.json").exists() else []
    checker = SupportChecker(OnnxInt8Embedder())
    f_tune = checker.features([(p.claim, p.evidence) for p in tune])
    f_held = checker.features([(p.claim, p.evidence) for p in held]) if held else []
    labels = [p.label for p in tune]
    print(f"built and embedded {len(tune) + len(held)} pairs in {time.perf_counter() - t0:.0f} s")

    ot, st, (p, r, f1) = sweep(f_tune, labels, use_similarity=True)
    print(f"\nchosen (max F1 on SQuAD): overlap_threshold={ot} similarity_threshold={st}")
    report("SQuAD 2.0 small (tuned on)", tune, f_tune, ot, st)
    if held:
        report("HotpotQA-100 (held out)", held, f_held, ot, st)

    no_emb = [replace(f, similarity=None) for f in f_tune]
    ot2, _, _ = sweep(no_emb, labels, use_similarity=False)
    print(f"\nwithout an embedder (overlap only): overlap_only_threshold={ot2}")
    report("SQuAD 2.0 small (tuned on)", tune, f_tune, ot2, None)
    if held:
        report("HotpotQA-100 (held out)", held, f_held, ot2, None)

    cur = SupportChecker()
    print(
        f"\nshipped defaults: overlap_threshold={cur.overlap_threshold} similarity_threshold="
        f"{cur.similarity_threshold} overlap_only_threshold={cur.overlap_only_threshold}"
    )
    report("SQuAD 2.0 small", tune, f_tune, cur.overlap_threshold, cur.similarity_threshold)
    if held:
        report("HotpotQA-100", held, f_held, cur.overlap_threshold, cur.similarity_threshold)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
