"""The offline support check: is an answer sentence supported by the passage(s) it cites?

1. verbatim: the sentence, normalised (case, whitespace, quotes, dashes, punctuation, ``[n]`` markers), occurs in
   one evidence text; or it is stitched from verbatim pieces of one evidence text, as in the extractive answer
   ``more than 2,000 — "China has sent more than 2,000 troops ..." [1]`` (pieces are cut at quotes and spaced
   dashes, and a piece shorter than four words must lie inside a longer piece of the same sentence, so a short
   fragment can not be borrowed from elsewhere in the passage).
2. otherwise paraphrase: every number and every name (capitalised word that is not a stopword) of the sentence
   occurs in the evidence (hard rules: a wrong number or a wrong name is the commonest unsupported claim, and
   embeddings barely see it), AND the share of the sentence's
   content words found in the evidence is at least ``overlap_threshold``, AND the cosine similarity between the
   sentence and its best-matching evidence sentence is at least ``similarity_threshold``. Without an embedder
   the overlap alone decides, against the stricter ``overlap_only_threshold``.

The thresholds were chosen on data by ``evals/tools/calibrate_support.py``; the figures are quoted beside them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.citations import strip_markers
from rag.text import CLAIM_STOPWORDS as STOPWORDS  # the claim analyzer, under the names this module exports
from rag.text import NUMBER_WORDS, claim_stem, content_words
from rag.text import claim_tokens as tokens
from rag.types import CONFLICT_LEAD

if TYPE_CHECKING:
    from rag.interfaces import Embedder

# Chosen by `python -m evals.tools.calibrate_support`: a grid sweep (overlap step 0.05, similarity step 0.025) for the
# best F1 of "supported" on 1,743 labelled pairs from SQuAD 2.0 small (586 supported; negatives are other sentences
# of the same paragraph, another paragraph of the article, and the claim with another answer of the article put
# in). There: precision 0.767, recall 0.768, F1 0.767. On HotpotQA-100, held out (545 pairs, multi-hop): precision
# 0.940, recall 0.687, F1 0.794. The embedding adds little over the words (F1 0.764 without it): the claims that
# fool the check differ from the evidence in one phrase, which the numbers/names rules and the overlap catch.
OVERLAP_THRESHOLD = 0.5
SIMILARITY_THRESHOLD = 0.45
# Same script, overlap alone (no embedder): SQuAD P 0.748, R 0.780, F1 0.764; HotpotQA P 0.940, R 0.687, F1 0.794.
OVERLAP_ONLY_THRESHOLD = 0.5
MIN_PIECE_WORDS = 4  # a stitched piece shorter than this must sit inside a longer piece of the same sentence

_SCALES = {"hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_PIECE_CUT = re.compile(r"[\"“”„]|\s[-–—]\s|:\s")  # where stitched quotes join: quote marks, spaced dashes, colons


MAX_NUMBER_DIGITS = 15  # longer digit runs are identifiers (a float would round them, or overflow to inf)


def _literal(tok: str) -> bool:
    """Whether a digit token is an identifier rather than a quantity: ``3.11.7``, ``10.0.0.1``, ``2021.01.02``
    (more than one dot) or a run of digits too long to be a value. Such a token must match as written."""
    return tok.count(".") > 1 or sum(ch.isdigit() for ch in tok) > MAX_NUMBER_DIGITS


def numbers(text: str) -> set[str]:
    """The numbers of ``text`` as values, so that spellings meet: ``2,000`` -> ``2000``, ``two hundred`` -> ``200``,
    ``3.5 million`` -> ``3500000``, ``twenty-five`` -> ``25``. Versions, IP addresses, dotted dates and long digit
    runs (``3.11.7``, ``10.0.0.1``, ``2021.01.02``) are one literal token each, kept as written."""
    out: set[str] = set()
    total, current, have, prev_small = 0.0, 0.0, False, None

    def flush() -> None:
        nonlocal total, current, have
        if have:
            v = total + current
            out.add(str(int(v)) if v == int(v) else f"{v:g}")
        total, current, have = 0.0, 0.0, False

    for tok in tokens(text):
        if tok[0].isdigit() and _literal(tok):  # a version, an address, a dotted date, a serial: as written
            flush()
            out.add(tok)
            prev_small = None
            continue
        if tok[0].isdigit() or (tok in NUMBER_WORDS and tok != "one"):  # "one of them" is rarely a quantity
            v = float(tok) if tok[0].isdigit() else float(NUMBER_WORDS[tok])
            # a small number right after another starts a new one, except "twenty" + "five"
            if prev_small is not None and not (prev_small >= 20 and prev_small % 10 == 0 and v < 10):
                flush()
            current += v
            have, prev_small = True, v
        elif tok in _SCALES and have:
            if _SCALES[tok] == 100:
                current *= 100
            else:
                total += current * _SCALES[tok]
                current = 0.0
            prev_small = None
        else:
            flush()
            prev_small = None
    flush()
    return out


_NAME = re.compile(r"\b[A-Z][^\W_]*(?:['’-][^\W_]+)*")


def names(text: str) -> set[str]:
    """Capitalised words of ``text`` (the first word too, unless it is a stopword), lower-cased and stemmed."""
    out = set()
    for m in _NAME.finditer(strip_markers(text)):
        for tok in tokens(m.group(0)):
            tok = tok.removesuffix("'s")
            if tok not in STOPWORDS and not tok[0].isdigit():
                out.add(claim_stem(tok))
    return out


def _joined(toks: Sequence[str]) -> str:
    return " " + " ".join(toks) + " "


def is_verbatim(sentence: str, evidence: Sequence[str]) -> bool:
    """True when ``sentence`` (normalised) occurs in one evidence text, or is stitched from its pieces."""
    whole = tokens(sentence)
    if not whole:
        return False
    ev = [_joined(tokens(e)) for e in evidence]
    if any(_joined(whole) in e for e in ev):
        return True
    pieces = [tokens(p) for p in _PIECE_CUT.split(strip_markers(sentence))]
    pieces = [p for p in pieces if p]
    if len(pieces) < 2:
        return False
    long_pieces = [_joined(p) for p in pieces if len(p) >= MIN_PIECE_WORDS]
    if not long_pieces:
        return False
    for p in pieces:
        if len(p) < MIN_PIECE_WORDS and not any(_joined(p) in lp for lp in long_pieces):
            return False
    return any(all(_joined(p) in e for p in pieces) for e in ev)


@dataclass(frozen=True)
class SupportResult:
    supported: bool
    score: float  # 1.0 for verbatim; else the cosine similarity to the best evidence sentence (overlap without
    # an embedder)
    method: str  # "verbatim" | "overlap+embedding" | "overlap" (no embedder) | "none" (nothing to check)


@dataclass(frozen=True)
class SupportFeatures:
    """What the decision is made from; exposed so the calibration measures exactly the shipped logic."""

    verbatim: bool
    overlap: float  # share of the sentence's content words found in the evidence
    numbers_ok: bool  # every number of the sentence occurs in the evidence
    names_ok: bool  # every name (capitalised word) of the sentence occurs in the evidence
    similarity: float | None  # best cosine similarity to an evidence sentence (None without an embedder)
    checkable: bool = True  # False when the sentence has no words or there is no evidence


class SupportChecker:
    """Verbatim match, else content-word overlap AND embedding similarity above thresholds chosen on data."""

    def __init__(
        self,
        embedder: Embedder | None = None,
        overlap_threshold: float = OVERLAP_THRESHOLD,
        similarity_threshold: float = SIMILARITY_THRESHOLD,
        overlap_only_threshold: float = OVERLAP_ONLY_THRESHOLD,
    ) -> None:
        for name, v, lo in (
            ("overlap_threshold", overlap_threshold, 0.0),
            ("similarity_threshold", similarity_threshold, -1.0),
            ("overlap_only_threshold", overlap_only_threshold, 0.0),
        ):
            if not lo <= v <= 1.0:
                raise ValueError(f"support {name} must be between {lo:g} and 1, got {v}")
        self.embedder = embedder
        self.overlap_threshold = overlap_threshold
        self.similarity_threshold = similarity_threshold
        self.overlap_only_threshold = overlap_only_threshold

    def check(self, sentence: str, evidence: Sequence[str]) -> SupportResult:
        return self.check_many([(sentence, evidence)])[0]

    def check_many(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[SupportResult]:
        """Check many (sentence, evidence texts) pairs with one embedding call for all of them."""
        return [self.decide(f) for f in self.features(pairs)]

    def decide(self, f: SupportFeatures) -> SupportResult:
        if not f.checkable:
            return SupportResult(False, 0.0, "none")
        if f.verbatim:
            return SupportResult(True, 1.0, "verbatim")
        if f.similarity is None:
            ok = f.numbers_ok and f.names_ok and f.overlap >= self.overlap_only_threshold
            return SupportResult(ok, f.overlap, "overlap")
        ok = (
            f.numbers_ok
            and f.names_ok
            and f.overlap >= self.overlap_threshold
            and f.similarity >= self.similarity_threshold
        )
        return SupportResult(ok, f.similarity, "overlap+embedding")

    def features(self, pairs: Sequence[tuple[str, Sequence[str]]]) -> list[SupportFeatures]:
        from rag.sentences import split_sentences

        feats: list[SupportFeatures] = []
        need: list[tuple[int, str, list[str]]] = []  # (pair index, sentence, evidence sentences) to embed
        for i, (sentence, evidence) in enumerate(pairs):
            sentence = sentence.removeprefix(CONFLICT_LEAD).lstrip()  # citeqa's framing, not a claim
            evidence = [e for e in evidence if e and e.strip()]
            words = content_words(sentence)
            if not evidence or not tokens(sentence):
                feats.append(SupportFeatures(False, 0.0, False, False, None, checkable=False))
                continue
            if is_verbatim(sentence, evidence):
                feats.append(SupportFeatures(True, 1.0, True, True, 1.0))
                continue
            ev_text = "\n".join(evidence)
            ev_words = set(content_words(ev_text))
            overlap = sum(w in ev_words for w in words) / len(words) if words else 0.0
            ev_stems = {claim_stem(t.removesuffix("'s")) for t in tokens(ev_text)}
            nums_ok = numbers(sentence) <= numbers(ev_text)
            feats.append(SupportFeatures(False, overlap, nums_ok, names(sentence) <= ev_stems, None))
            if self.embedder is not None:
                sents = [e[a:b] for e in evidence for a, b in split_sentences(e)] or evidence
                need.append((i, strip_markers(sentence), sents))
        if need:
            # one batch for every sentence and evidence sentence; repeated texts are embedded once
            texts = list(dict.fromkeys(t for _, s, ev in need for t in (s, *ev)))
            row = {t: j for j, t in enumerate(texts)}
            vecs = np.asarray(self.embedder.embed(texts), dtype=np.float32)  # type: ignore[union-attr]
            for i, s, ev in need:
                sims = vecs[[row[t] for t in ev]] @ vecs[row[s]]
                f = feats[i]
                feats[i] = SupportFeatures(False, f.overlap, f.numbers_ok, f.names_ok, float(np.max(sims)))
        return feats
