"""The default answerer: no LLM, no network. It quotes the retrieved sentences that best answer the question,
verbatim, each with a `[n]` marker mapped to its exact span, and pulls out the short answer (a number, date,
name or phrase) inside the best one. When nothing retrieved is relevant enough it abstains."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rag.citations import citation_for_span
from rag.lexicon import IRREGULAR
from rag.sentences import split_sentences
from rag.support import STOPWORDS
from rag.types import ABSTAIN_TEXT, Answer, Citation, Hit, Turn

MAX_CANDIDATES = 80  # sentences scored per question (from the top hits, in rank order)
QUESTION_WORDS = frozenset(
    "what which who whom whose when where why how many much does did do is are was were name tell give list".split()
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*(?:[.,]\d+)*")
_MONTHS = (
    "january|february|march|april|may|june|july|august|september|october|november|december|"
    "jan|feb|mar|apr|jun|jul|aug|sep|sept|oct|nov|dec"
)
_NUMWORDS = (
    "one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    "seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|"
    "dozen|dozens|hundreds|thousands|millions|several"
)
_QUALIFIER = (
    r"(?:(?:more|fewer|less)\s+than|over|under|about|around|approximately|roughly|nearly|almost|some|"
    r"up\s+to|at\s+least|at\s+most|only|just|as\s+many\s+as|an\s+estimated)\s+"
)
_NUMBER_RE = re.compile(
    rf"(?<![\w-])(?:{_QUALIFIER})?(?:[$€£¥]\s?)?(?:\d[\d,]*(?:\.\d+)?|(?:{_NUMWORDS})(?:[\s-](?:{_NUMWORDS}))*)"
    r"(?:\s?(?:%|percent|per\s+cent|million|billion|trillion|thousand|hundred|km|kilometres|kilometers|"
    r"miles|metres|meters|kg|tonnes|tons|years|months|weeks|days|hours|minutes|seconds|mb|gb|ms))?(?![\w-])",
    re.IGNORECASE,
)
_DATE_RE = re.compile(
    rf"(?<![\w-])(?:(?:\d{{1,2}}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:{_MONTHS})\.?(?:,?\s+\d{{4}})?)|"
    rf"(?:(?:{_MONTHS})\.?\s+\d{{1,2}}(?:st|nd|rd|th)?(?:,?\s+\d{{4}})?)|"
    rf"(?:(?:early|mid|late)[\s-])?(?:{_MONTHS})\.?(?:\s+(?:of\s+)?\d{{4}})?|"
    r"\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{2,4}|"
    r"(?:the\s+)?\d{1,2}(?:st|nd|rd|th)\s+century|(?:the\s+)?(?:1[0-9]|20)\d0s|"
    r"(?:1[0-9]|20)\d{2}|"
    r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday))(?![\w-])",
    re.IGNORECASE,
)
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_YEAR = re.compile(r"^(?:1[0-9]|20)\d{2}$")
_CAPSEQ = re.compile(
    r"(?<![\w’'])(?:[A-Z][\w’'.\-]*|[0-9]+)(?:\s+(?:(?:of|the|de|da|von|van|and|for|del|la|le|du)\s+)*"
    r"(?:[A-Z][\w’'.\-]*))*"
)


def words(text: str) -> list[str]:
    return [w.lower().replace(",", "") for w in _WORD.findall(text)]


def _stem(w: str) -> str:
    if w in IRREGULAR:
        return IRREGULAR[w]
    for suf in ("ing", "ed", "es", "s"):
        if len(w) > len(suf) + 3 and w.endswith(suf):
            return w[: -len(suf)]
    return w


def content_terms(text: str) -> list[str]:
    return [_stem(w) for w in words(text) if w not in STOPWORDS and w not in QUESTION_WORDS]


def question_type(question: str) -> str:
    q = " ".join(question.lower().split())
    if re.search(r"\bhow (many|much|long|far|old|big|large|tall|high|deep|often|fast)\b", q) or re.search(
        r"\b(what|which) (number|percentage|percent|proportion|share|amount|size|population|price|cost|speed)\b", q
    ):
        return "number"
    if re.search(r"\b(when|what year|which year|what date|what time|what day|what month|what century|what decade|"
                 r"which century|which decade|in what year)\b", q):
        return "date"
    if re.search(r"^(who|whom|whose)\b|\b(who|whom|whose)\b|\b(which|what) (person|man|woman|company|organi[sz]ation|"
                 r"group|team|author|scientist|king|queen|president|leader|agency|ministry)\b", q):
        return "person"
    if re.search(r"\b(where|what (country|city|place|region|state|town|location|continent|island|sea|river)|"
                 r"which (country|city|place|region|state|town|location|continent|island|sea|river))\b", q):
        return "place"
    return "phrase"


def contextualize(question: str, history: Sequence[Turn]) -> str:
    """The query for retrieval and scoring: an elliptic follow-up ("and in 2018?") is joined to the previous
    question so it keeps its subject; a self-contained question is used as it is."""
    if not history:
        return question
    q = question.strip()
    terms = content_terms(q)
    elliptic = (
        len(terms) <= 2
        or re.match(r"^(and|but|what about|how about|also|or)\b", q.lower())
        or re.search(r"\b(it|they|them|that|those|this|these|he|she|there)\b", q.lower()) and len(terms) <= 4
    )
    if not elliptic:
        return question
    return f"{history[-1].question.strip()} {q}"


@dataclass
class _Candidate:
    hit: Hit
    start: int  # offsets local to hit.chunk.text
    end: int
    text: str
    score: float = 0.0
    sim: float = 0.0
    lex: float = 0.0


def _spans(pattern: re.Pattern[str], sentence: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in pattern.finditer(sentence) if m.group(0).strip()]


def _near(sentence: str, span: tuple[int, int], qterms: set[str]) -> float:
    """Closeness of a span to the question's words inside the sentence (higher is closer)."""
    best = math.inf
    for m in _WORD.finditer(sentence):
        if _stem(m.group(0).lower().replace(",", "")) in qterms:
            d = span[0] - m.end() if m.end() <= span[0] else m.start() - span[1] if m.start() >= span[1] else 0
            best = min(best, max(d, 0))
    return 1.0 / (1.0 + best / 8.0) if best < math.inf else 0.0


def _overlaps_question(text: str, question: str) -> bool:
    qw = set(words(question))
    tw = [w for w in words(text) if w not in STOPWORDS]
    return bool(tw) and all(w in qw for w in tw)


def short_answer(question: str, sentence: str) -> str | None:
    """The span of ``sentence`` that answers ``question``, by question type; None when nothing sensible."""
    qtype = question_type(question)
    qterms = set(content_terms(question))
    cands: list[tuple[float, int, int]] = []
    if qtype == "number":
        for a, b in _spans(_NUMBER_RE, sentence):
            s = sentence[a:b].strip()
            if _ISO_DATE.match(s) or (_YEAR.match(s) and "year" not in question.lower()):
                continue
            if _overlaps_question(s, question):
                continue
            cands.append((_near(sentence, (a, b), qterms) + (0.2 if re.search(r"\d", s) else 0), a, b))
    elif qtype == "date":
        for a, b in _spans(_DATE_RE, sentence):
            if _overlaps_question(sentence[a:b], question):
                continue
            bonus = 0.3 if re.search(r"\d", sentence[a:b]) and re.search(_MONTHS, sentence[a:b], re.I) else 0.0
            cands.append((_near(sentence, (a, b), qterms) + bonus, a, b))
    elif qtype in ("person", "place"):
        for a, b in _spans(_CAPSEQ, sentence):
            s = sentence[a:b]
            if s.isdigit() or _overlaps_question(s, question) or s.lower() in STOPWORDS | QUESTION_WORDS:
                continue
            before = sentence[max(0, a - 6) : a].lower()
            bonus = 0.3 if qtype == "place" and re.search(r"\b(in|at|from|near|to|of)\s$", before) else 0.0
            cands.append((_near(sentence, (a, b), qterms) + bonus + 0.05 * min(len(s.split()), 3), a, b))
    if not cands:
        # a "how many"/"when" question whose sentence holds no number/date has no short answer in it
        return None if qtype in ("number", "date") else _phrase(question, sentence, qterms)
    cands.sort(key=lambda c: (-c[0], c[1]))
    _, a, b = cands[0]
    return sentence[a:b].strip(" ,;:.") or None


def _phrase(question: str, sentence: str, qterms: set[str]) -> str | None:
    """SQuAD-style fallback: the run of words next to the question's words that the question does not contain,
    cut at punctuation, at most 8 words."""
    toks = [(m.start(), m.end(), m.group(0)) for m in _WORD.finditer(sentence)]
    if not toks:
        return None
    matched = [_stem(t.lower().replace(",", "")) in qterms for _, _, t in toks]
    if not any(matched):
        return None
    runs: list[tuple[int, int]] = []  # token index ranges of unmatched words between punctuation
    i = 0
    while i < len(toks):
        if matched[i]:
            i += 1
            continue
        j = i
        while j < len(toks) and not matched[j]:
            if j > i and re.search(r"[,;:()\"“”]", sentence[toks[j - 1][1] : toks[j][0]]):
                break
            j += 1
        runs.append((i, j))
        i = j
    best: tuple[float, int, int] | None = None
    for i, j in runs:
        while i < j and toks[i][2].lower() in STOPWORDS:
            i += 1
        while j > i and toks[j - 1][2].lower() in STOPWORDS:
            j -= 1
        if i >= j:
            continue
        n = j - i
        adjacent = (i > 0 and matched[i - 1]) or (j < len(toks) and matched[j])
        score = (1.0 if adjacent else 0.3) + sum(matched) / len(toks) - 0.04 * max(0, n - 4)
        score += 0.05 * sum(1 for k in range(i, j) if toks[k][2][0].isupper() or toks[k][2][0].isdigit())
        if n > 8:
            j = i + 8
        if best is None or score > best[0]:
            best = (score, i, j)
    if best is None:
        return None
    _, i, j = best
    return sentence[toks[i][0] : toks[j - 1][1]].strip(" ,;:.") or None


class ExtractiveAnswerer:
    """rag.interfaces.Answerer without a generative model."""

    name = "extractive"

    def __init__(self, embedder, min_relevance: float = 0.3, max_sentences: int = 2, second_within: float = 0.08,
                 min_lexical: float = 0.0) -> None:
        if max_sentences < 1:
            raise ValueError("max_sentences must be >= 1")
        self.embedder = embedder
        self.min_relevance = min_relevance
        self.max_sentences = max_sentences
        self.second_within = second_within
        self.min_lexical = min_lexical

    def _candidates(self, hits: Sequence[Hit]) -> list[_Candidate]:
        seen: set[tuple[str, int, int]] = set()
        out: list[_Candidate] = []
        for hit in sorted(hits, key=lambda h: h.rank or 0):
            text = hit.chunk.text
            for a, b in split_sentences(text):
                key = (hit.chunk.source, hit.chunk.start + a, hit.chunk.start + b)
                if key in seen:
                    continue
                seen.add(key)
                out.append(_Candidate(hit, a, b, text[a:b]))
                if len(out) >= MAX_CANDIDATES:
                    return out
        return out

    def _score(self, query: str, cands: list[_Candidate]) -> None:
        vecs = np.asarray(self.embedder.embed([query] + [c.text for c in cands]))
        sims = vecs[1:] @ vecs[0]
        qterms = list(dict.fromkeys(content_terms(query)))
        sent_terms = [set(content_terms(c.text)) for c in cands]
        n = len(cands)
        idf = {t: math.log(1 + n / (1 + sum(1 for s in sent_terms if t in s))) for t in qterms}
        total = sum(idf.values()) or 1.0
        qtype = question_type(query)
        typed = {"number": _NUMBER_RE, "date": _DATE_RE}.get(qtype)
        for c, sim, terms in zip(cands, sims, sent_terms, strict=True):
            c.sim = float(sim)
            c.lex = sum(idf[t] for t in qterms if t in terms) / total if qterms else 0.0
            rank = c.hit.rank or 1
            c.score = 0.55 * c.sim + 0.45 * c.lex + 0.03 / rank
            if typed is not None:
                found = short_answer(query, c.text)
                if found is not None:
                    # the sentence holds the kind of thing asked for (a number, a date); digits beat words
                    c.score += 0.12 if re.search(r"\d", found) else 0.06

    def relevant(self, hits: Sequence[Hit], best: _Candidate | None) -> bool:
        """Is anything retrieved relevant enough to answer from? The best passage's similarity to the question
        must reach min_relevance, and the best sentence must share a content word with it or be close."""
        if not hits or best is None:
            return False
        dense = max((h.dense_score for h in hits if h.dense_score is not None), default=best.sim)
        if best.lex <= self.min_lexical:  # not one content word of the question in the best sentence
            return best.sim >= self.min_relevance + 0.25
        # a strong lexical match ("Who is Artyom Lukin?") may have a low cosine with a long passage
        return dense >= self.min_relevance or (best.lex >= 0.6 and dense >= self.min_relevance / 2)

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        t0 = time.perf_counter()
        query = contextualize(question, history)
        cands = self._candidates(hits)
        if cands:
            self._score(query, cands)
        ranked = sorted(cands, key=lambda c: -c.score)
        best = ranked[0] if ranked else None
        if not self.relevant(hits, best):
            return Answer(question=question, answer=ABSTAIN_TEXT, short_answer=None, abstained=True, hits=tuple(hits),
                          timings={"answer": (time.perf_counter() - t0) * 1000}, backend=self.name)
        assert best is not None
        chosen = [best]
        for c in ranked[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if best.score - c.score <= self.second_within and c.lex > 0:
                chosen.append(c)
        short = short_answer(question if not history else query, best.text)
        citations: list[Citation] = []
        quotes: list[str] = []
        for n, c in enumerate(chosen, start=1):
            citations.append(citation_for_span(n, c.hit, c.start, c.end, supported=True, score=round(c.score, 4)))
            quotes.append(f'"{c.text}" [{n}]')
        body = " ".join(quotes)
        text = f"{short} — {body}" if short else body
        return Answer(
            question=question,
            answer=text,
            short_answer=short,
            abstained=False,
            citations=tuple(citations),
            hits=tuple(hits),
            timings={"answer": (time.perf_counter() - t0) * 1000},
            backend=self.name,
        )
