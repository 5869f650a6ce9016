"""The default answerer (no LLM, no network): the sentences of the retrieved passages that best answer the
question, quoted verbatim with their exact offsets, after a short answer span taken from the best of them.

1. Every hit's chunk is split into sentences (rag.sentences) mapped to absolute offsets; a sentence seen in two
   overlapping chunks is kept once, and a fragment cut by a chunk edge is dropped when another chunk holds the
   whole sentence.
2. Each sentence is scored against the question: embedding similarity (question and all sentences embedded in
   one batch), plus the IDF-weighted share of the question's content words it contains, plus small bonuses for
   the rank of its passage and for holding what a how-many/when question asks for. The best sentence is quoted,
   and a second one when it scores nearly as well and brings question words the first lacks.
3. The short answer is a span of a quoted sentence chosen by question type: numbers with their qualifiers
   ("more than 2,000") for how many/much, dates and times for when/what year, names for who/where, else the
   phrase next to the question's words. None when nothing fits; it is always a substring of its sentence.
4. It abstains when the passages are not relevant enough (see ``ExtractiveAnswerer.relevant``).
5. Follow-ups: ``contextualize`` joins an elliptic question to the previous one ("... ? and in 2018?"), and the
   follow-up's own words then weigh more than the context's.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from rag.text import CLAIM_STOPWORDS, SpanToken, claim_tokens, content_words, plain_words, span_tokens
from rag.types import ABSTAIN_TEXT, CONFLICT_LEAD, Answer, Citation, Hit, Turn

if TYPE_CHECKING:
    from rag.interfaces import Embedder

# Sentence score = W_SIM * cosine + W_LEX * IDF-weighted question-word share + W_RANK / (1 + passage index)
# (+ W_TYPED). Swept on SQuAD 2.0 small (hits: the article's top-5 paragraphs by cosine): the top sentence holds
# the gold answer for 75.1% of the 265 answerable questions whose paragraph is retrieved, against 66.8% for the
# cosine alone and 70.9% for the word share alone; W_LEX anywhere in 0.6-1.0 gives 74.7-75.8%. The rank prior
# and the typed bonus move at most one SQuAD question; they are kept small for hybrid (BM25-informed) ranks and
# for "how many"/"when" questions, of which SQuAD small has few.
W_SIM = 1.0
W_LEX = 0.8
W_RANK = 0.05
W_TYPED = 0.2  # for a sentence holding a number (a date) when the question asks how many (when)
# Abstention, measured on SQuAD 2.0 small and HotpotQA-100 questions (the top-5 passages by cosine as hits) and
# 21 hand-written questions over the vostok article: with min_relevance 0.3 (the setting's default) and the two
# values below it answers 99.7% of the answerable SQuAD questions and 13/13 on-topic vostok questions, and abstains
# on 99.2-99.5% of questions asked of the wrong document (SQuAD article swapped, SQuAD questions over vostok),
# 97-100% of HotpotQA questions over SQuAD/vostok, 8/8 off-topic vostok questions ("What is the population of
# Paris?"). Without the lexical guard off-topic abstention drops to 83-97%; a 0.3 floor on the passage's cosine
# alone wrongly abstains on 4 of the 13 vostok questions. SQuAD 2.0's adversarial unanswerable questions are
# abstained on only 3.3% of the time: they ask about the passage's own words, which this cannot see.
MIN_LEXICAL = 0.2
WEAK_LEXICAL_MARGIN = 0.15
SECOND_MARGIN = 0.08  # a second sentence is quoted only when it scores within this of the best
LATER_SENTENCE_PENALTY = 1.0  # in tokens of distance: a short answer from the second quote must be this much better
# An elliptic follow-up's own words ("and in 2018?") are what the user asks about now: they weigh double in the
# word share, and a sentence holding none of them (typically the one that answered the previous question) loses
# FOLLOW_UP_MISS.
FOLLOW_UP_WEIGHT = 2.0
FOLLOW_UP_MISS = 0.4
# Candidate sentences embedded per answer (the best by word share, passage rank and type; embedding them is most of
# an answer's time). SQuAD 2.0 small, answer_contains / citation precision: 4: 0.765 / 0.863, 6: 0.768 / 0.860,
# 10: 0.768 / 0.858, all: 0.765 / 0.855.
MAX_EMBEDDED = 4
# Conflicting sources: a sentence of another document that scores within CONFLICT_MARGIN of the best, names
# everything the question names, and holds another value of the asked kind ("The capital of Freedonia is
# Atlantis" against "... is Marbury") is shown beside the best one instead of being silently outranked.
# Both sentences must hold nearly all of the question's (IDF-weighted) words (CONFLICT_MIN_LEX) and put their
# value right next to them (at most CONFLICT_MAX_DISTANCE tokens away, as "the capital of Freedonia is Atlantis"
# does): two sentences that each fully state the asked relation, not a sentence that merely names another thing.
CONFLICT_MARGIN = 0.15
CONFLICT_MIN_LEX = 0.7
CONFLICT_MAX_DISTANCE = 3.0
NOTE_CONFLICT = "the documents disagree: both sources are cited"
MAX_CONTEXT_TURNS = 3  # how far back a chain of elliptic follow-ups may reach
ELLIPTIC_MAX_WORDS = 4  # follow-ups this short that do not open with a wh-word or verb are fragments


# -- question analysis ------------------------------------------------------------------------------------------

_CONTINUATION = re.compile(r"^\s*(?:and|but|or|also|so|then|plus|what about|how about|same for|and what about)\b", re.I)
_PRONOUN = re.compile(r"\b(?:it|its|they|them|their|this|that|these|those|he|she|him|her|his|there)\b", re.I)
_WH_OR_AUX = re.compile(
    r"^\s*(?:who|whom|whose|what|which|when|where|why|how|is|are|was|were|do|does|did|can|could|will|would|has|"
    r"have|had|should|name|list|give|tell)\b",
    re.I,
)


def _is_elliptic(question: str) -> bool:
    """A follow-up that only makes sense with the previous question ("and in 2018?", "why?", "who led it?")."""
    words = plain_words(question)
    if not words:
        return False
    lead = _CONTINUATION.match(question)
    if lead and _asks_on_its_own(question[lead.end() :]):
        return False  # "and what happens with a scanned PDF?": a question of its own after the "and"
    if lead or len(words) <= 2:
        return True
    if len(words) <= ELLIPTIC_MAX_WORDS and not _WH_OR_AUX.match(question):
        return True  # a fragment: "in 2018?", "the Chinese contingent?"
    # a short question leaning on a pronoun and naming nothing itself
    has_name = any(w[0].isupper() for w in words[1:])
    return len(words) <= 6 and bool(_PRONOUN.search(question)) and not has_name


_SCAFFOLD = frozenset({"many", "much", "about", "else", "happen", "happens", "happened", "then"})


def _asks_on_its_own(rest: str) -> bool:
    """Whether what follows a continuation word ("and", "but", "also") is a whole question: it opens with a
    wh-word or an auxiliary, leans on no pronoun, and names at least two things of its own (not numbers, not
    "how many"/"what happens" scaffolding): "what happens with a scanned PDF?" does, "how many in 2018?" and
    "who led it?" do not."""
    if not _WH_OR_AUX.match(rest) or _CONTINUATION.match(rest) or _PRONOUN.search(rest):
        return False  # "and what about the Chinese contingent?" is still a "what about" follow-up
    own = [w for w in content_words(rest) if not w[0].isdigit() and w not in _SCAFFOLD]
    return len(own) >= 2


def contextualize(question: str, history: Sequence[Turn]) -> str:
    """The query to retrieve and answer with: an elliptic follow-up is joined to the previous question, e.g.
    "How many troops did China send? and in 2018?"; a self-contained question is returned unchanged.

    When the previous question was itself elliptic, the chain goes back further (at most MAX_CONTEXT_TURNS)."""
    q = question.strip()
    parts = [q]
    for turn in reversed(history[-MAX_CONTEXT_TURNS:]):
        if not _is_elliptic(parts[0]):
            break
        parts.insert(0, turn.question.strip())
    return " ".join(p for p in parts if p)


_NUM_Q = re.compile(
    r"\bhow (?:many|much|long|old|far|large|big|tall|high|wide|deep|often|fast|heavy)\b|"
    r"\b(?:what|which) (?:is |was |were |are )?(?:the )?(?:number|percentage|percent|proportion|amount|fraction|"
    r"share|size|population|cost|price|total|rate|length|distance|height|area|sum|value)\b",
    re.I,
)
_DATE_Q = re.compile(
    r"\bwhen\b|\b(?:what|which)\s+(?:\w+\s+)?(?:year|years|date|day|month|century|centuries|decade|era|period|"
    r"season)\b|\bwhat time (?:do|does|did|is|was|will|are)\b|\bhow long ago\b|\bsince when\b",
    re.I,
)
_WHO_Q = re.compile(
    r"\bwho(?:m|se)?\b|\b(?:what|which) (?:person|people|man|woman|king|queen|leader|ruler|group|organi[sz]ation|"
    r"company|team|agency|party|author|president|emperor|duke|general|official|scientist|family|tribe)\b",
    re.I,
)
_WHERE_Q = re.compile(
    r"\bwhere\b|\b(?:what|which) (?:country|countries|city|cities|place|region|state|town|area|continent|"
    r"location|island|river|province|nation|sea|territory|county|village|capital|port)\b",
    re.I,
)
_HOW_MANY_NOUN = re.compile(r"\bhow (?:many|much)\s+([^\W\d_]+)", re.I)


def question_type(question: str) -> str:
    """``num`` | ``date`` | ``who`` | ``where`` | ``other``; the earliest cue wins ("When ... how many" is a date)."""
    found = []
    for kind, pat in (("date", _DATE_Q), ("num", _NUM_Q), ("who", _WHO_Q), ("where", _WHERE_Q)):
        m = pat.search(question)
        if m:
            found.append((m.start(), kind))
    return min(found)[1] if found else "other"


# -- short answer spans ------------------------------------------------------------------------------------------

_NUMWORD = (
    r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|sixteen|"
    r"seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|thousand|million|"
    r"billion|trillion|dozen|hundreds|thousands|millions|billions|dozens|half|a third|a quarter|a sixth|a fifth|"
    r"a tenth|a half)"
)
_NUMBER = r"(?:[$€£¥]\s?)?(?:(?<![\d,.])\d[\d,]*(?:\.\d+)?(?![\d,]*\d)|" + _NUMWORD + r")(?:[\s-]" + _NUMWORD + r")*"
_QUALIFIER = (
    r"(?:(?:(?:more|fewer|less|greater|higher|lower|larger|smaller) than|well over|just over|just under|over|under|"
    r"about|around|approximately|roughly|nearly|almost|some|at least|at most|up to|close to|an estimated|"
    r"as many as|as much as|upwards of|between|only|exactly|a total of|a little over)\s+)"
)
_UNIT = (
    r"(?:\s?(?:%|per ?cent\b)|\s(?:km|kilometres|kilometers|miles|metres|meters|feet|foot|inches|kg|kilograms|"
    r"pounds|tons|tonnes|years|year|months|month|weeks|week|days|day|hours|hour|minutes|seconds|dollars|euros|"
    r"degrees|acres|hectares|times|percent|square (?:miles|kilometres|kilometers|metres|meters|feet)|"
    r"million|billion)\b)"
)
_NUM_SPAN = re.compile(
    r"(?<![\w$€£¥])" + _QUALIFIER + r"?" + _NUMBER + r"(?:\s?(?:-|–|to|and)\s?" + _NUMBER + r")?" + _UNIT + r"?"
    r"(?![-–]?[^\W\d_])",  # not the start of a word: "four-yearly", "3D"
    re.I,
)
_MONTH = (
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December|Jan\.|Feb\.|"
    r"Mar\.|Apr\.|Jun\.|Jul\.|Aug\.|Sept?\.|Oct\.|Nov\.|Dec\.)"
)
_ORD = r"\d{1,2}(?:st|nd|rd|th)"
_DATE_SPAN = re.compile(
    r"(?:(?:early|mid|late)[\s-])?" + _MONTH + r"\s+\d{1,2}(?:st|nd|rd|th)?\b(?:,?\s+\d{4}\b)?|"
    r"\b\d{1,2}(?:st|nd|rd|th)?\s+" + _MONTH + r"(?:,?\s+\d{4}\b)?|"
    r"(?:(?:early|mid|late)[\s-])?" + _MONTH + r",?\s+\d{4}\b|"
    r"(?:the\s+)?(?:(?:early|mid|late)[\s-])?" + _ORD + r"(?:\s+(?:and|or|to)\s+" + _ORD + r"|[-–]" + _ORD + r")?"
    r"\s+centur(?:y|ies)(?:\s+(?:BC|AD|BCE|CE)\b)?|"
    r"(?:(?:early|mid|late)[\s-])?(?<![\d,.])(?:1\d{3}|20\d{2})s?(?![\d,])(?:\s?(?:-|–|to)\s?\d{2,4}\b)?"
    r"(?:\s+(?:BC|AD|BCE|CE)\b)?|"
    r"\b(?:AD|BC)\s+\d{1,4}\b|\b\d{1,4}\s+(?:BC|AD|BCE)\b|"
    r"\b(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)\b|"
    r"\b\d{1,2}[:.]\d{2}(?:\s?(?:am|pm|a\.m\.|p\.m\.))?(?![\d.,]\d)|\b\d{1,2}\s?(?:am|pm|a\.m\.|p\.m\.)(?!\w)|"
    r"\b" + _MONTH + r"(?![\w.])"
)
_CAPWORD = r"(?:[A-Z](?:\.[A-Z])+\.?|[A-Z][^\W_]*(?:['’-][^\W_]+)*)"
_CONNECT = r"(?:of|de|da|del|della|der|di|du|la|le|van|von|the|al|bin|and|y|upon|on)"
_NAME_SPAN = re.compile(r"(?<![\w’'-])" + _CAPWORD + r"(?:\s+(?:" + _CONNECT + r"\s+)*" + _CAPWORD + r")*")
_BREAK = set(",;:()[]\"“”‘’—–!?")
_YEARLIKE = re.compile(r"^(?:1\d{3}|20\d{2})$")
_MONTHS_DAYS = set(
    "january february march april may june july august september october november december monday tuesday "
    "wednesday thursday friday saturday sunday".split()
)
_PLACE_PREP = {"in", "at", "from", "to", "near", "into", "across", "of", "on"}
_Add = Callable[..., None]  # add(start, end, penalty=0.0): offer a candidate span of the sentence
MAX_PHRASE_TOKENS = 6  # SQuAD answers to "what" questions are short noun phrases (median 2-3 words)


def _proximity(toks: list[SpanToken], qmask: list[bool], a: int, b: int) -> int:
    """Tokens between the span ``toks[a:b]`` and the nearest question word of the sentence (99 when none)."""
    best = 99
    for i, hit in enumerate(qmask):
        if hit:
            d = a - i - 1 if i < a else i - b if i >= b else 0
            best = min(best, max(d, 0))
    return best


def _tok_range(toks: list[SpanToken], start: int, end: int) -> tuple[int, int]:
    a = next((i for i, t in enumerate(toks) if t.end > start), len(toks))
    b = next((i for i, t in enumerate(toks) if t.start >= end), len(toks))
    return a, b


def _trim_name(sentence: str, start: int, end: int, qwords: set[str]) -> tuple[int, int] | None:
    """Drop leading stopwords ("The", "In") and a trailing possessive from a capitalised run."""
    span = sentence[start:end]
    words = list(re.finditer(r"\S+", span))
    while words and words[0].group(0).lower() in CLAIM_STOPWORDS:
        words.pop(0)
    if not words:
        return None
    a, b = start + words[0].start(), start + words[-1].end()
    text = sentence[a:b]
    for suffix in ("'s", "’s"):
        if text.endswith(suffix):
            b -= len(suffix)
    # "Richard I of Normandy" asked about Normandy: the name is "Richard I"
    tail = re.search(r"\s+(?:of|de|von|van|du|the)\s+[^,;]+$", sentence[a:b])
    if tail and all(w in qwords for w in content_words(tail.group(0))):
        if content_words(sentence[a : a + tail.start()]):
            b = a + tail.start()
    stems = content_words(sentence[a:b])
    if not stems or all(s in qwords for s in stems) or all(s in _MONTHS_DAYS for s in stems):
        return None
    return a, b


def short_answer_span(question: str, sentence: str, qtype: str | None = None) -> tuple[int, int] | None:
    """``(start, end)`` of the short answer to ``question`` inside ``sentence``, or None when nothing fits."""
    best = _best_span(question, sentence, qtype)
    return (best[1], best[2]) if best else None


def _best_span(question: str, sentence: str, qtype: str | None = None) -> tuple[float, int, int] | None:
    """The best short-answer candidate as ``(rank key, start, end)``; a smaller key is a better candidate.

    Candidates of the asked type (numbers, dates, names) are ranked by their distance in tokens to the nearest
    question word of the sentence, with a few typed preferences; "what ..." questions and who/where questions
    whose sentence holds no name get the content phrase next to the question words."""
    qtype = qtype or question_type(question)
    qwords = set(content_words(question))
    toks = span_tokens(sentence)
    if not toks:
        return None
    qmask = [bool(t.stem) and t.stem in qwords for t in toks]
    cands: list[tuple[tuple[float, int], int, int]] = []  # (sort key, start, end): the smallest key wins

    def add(start: int, end: int, penalty: float = 0.0) -> None:
        while end > start and sentence[end - 1] in ".,;:":
            end -= 1
        stems = content_words(sentence[start:end])
        if not stems or all(s in qwords for s in stems):
            return  # the question's own words are not an answer ("in 2018" when 2018 is asked about)
        a, b = _tok_range(toks, start, end)
        cands.append(((_proximity(toks, qmask, a, b) + penalty, start), start, end))

    if qtype == "num":
        _numbers(question, sentence, add)
    elif qtype == "date":
        _dates(question, sentence, add)
    elif qtype in ("who", "where"):
        _names(qtype, sentence, toks, qwords, add)
        if not cands:
            _phrases(toks, qmask, add, capitalised_only=True)
    else:
        _phrases(toks, qmask, add)
    if not cands:
        return None  # a "how many" sentence without a number has no short answer: better none than a wrong one
    (key, _), start, end = min(cands)
    return key, start, end


_MONEY_Q = re.compile(r"\b(?:cost|costs|price|spend|spent|pay|paid|worth|budget|money|funding|fund)\b", re.I)
_MONEY = re.compile(r"[$€£¥]|\b(?:dollars|euros|pounds|yen|usd|eur|gbp)\b", re.I)
YEAR_PENALTY = 5.0  # in tokens of distance: a year is rarely the answer to "how many"
COUNTED_BONUS = 10.0  # "how many troops" -> the number just before "troops"


def _counted_noun(question: str) -> list[str]:
    """["troop"] for "How many troops ...?"; [] for "How much did it cost?" ("did" is no noun)."""
    m = _HOW_MANY_NOUN.search(question)
    return content_words(m.group(1)) if m else []


def _number_spans(question: str, sentence: str) -> list[tuple[int, int, float]]:
    """Number candidates as ``(start, end, penalty)``; a negative penalty marks a strong candidate."""
    counted = _counted_noun(question)
    asks_year = re.search(r"\byears?\b", question, re.I)
    asks_money = _MONEY_Q.search(question)
    out = []
    for mm in _NUM_SPAN.finditer(sentence):
        start, end = mm.start(), mm.end()
        penalty = 0.0
        if any(_YEARLIKE.match(t) for t in content_words(sentence[start:end])) and not asks_year:
            penalty += YEAR_PENALTY
        if counted and counted[0] in content_words(sentence[end : end + 40])[:3]:
            penalty -= COUNTED_BONUS
        if asks_money:
            penalty += -3.0 if _MONEY.search(sentence[start:end]) else 2.0
        out.append((start, end, penalty))
    return out


def _numbers(question: str, sentence: str, add: _Add) -> None:
    for start, end, penalty in _number_spans(question, sentence):
        add(start, end, penalty)


def typed_answer_strength(question: str, sentence: str, qtype: str) -> float:
    """How well ``sentence`` holds the kind of thing a how-many (when) question asks for: 1.0 for a date, or a
    number that is not a mere year and sits right before the counted noun ("2,000 troops") when there is one;
    0.5 for another number (the noun may be a synonym: "3,200 soldiers"); else 0."""
    if qtype == "date":
        return 1.0 if _DATE_SPAN.search(sentence) else 0.0
    if qtype != "num":
        return 0.0
    penalties = [p for _, _, p in _number_spans(question, sentence)]
    if _counted_noun(question) and any(p <= -COUNTED_BONUS + YEAR_PENALTY for p in penalties):
        return 1.0
    if any(p <= 0 for p in penalties):
        return 0.5 if _counted_noun(question) else 1.0
    return 0.0


_SHORT_YEAR = re.compile(r"\b(?:in|by|since|until|from|around|after|before|of|c\.)\s+(\d{3,4})(?![\d,])\b")


def _dates(question: str, sentence: str, add: _Add) -> None:
    asks_year = re.search(r"\b(?:what|which) year\b", question, re.I)
    for mm in _DATE_SPAN.finditer(sentence):
        start, end = mm.start(), mm.end()
        if asks_year:  # "What year ...?" -> "1082", not "February 1082"
            y = re.search(r"\d{4}", sentence[start:end])
            if y:
                start, end = start + y.start(), start + y.end()
        add(start, end)
    for mm in _SHORT_YEAR.finditer(sentence):  # early years: "in 911"
        add(mm.start(1), mm.end(1), 0.5)


_AGENT = re.compile(
    r"\bby\s+((?:the\s+|a\s+|an\s+)?[^\W\d_][\w’'-]*(?:\s+(?:of\s+)?[^\W\d_][\w’'-]*){0,4}?)"
    r"(?=\s*(?:[.,;:!?)]|$)|\s+(?:in|on|at|for|with|from|to|and|after|before|during|when|which|who|that|as)\b)"
)


def _names(qtype: str, sentence: str, toks: list[SpanToken], qwords: set[str], add: _Add) -> None:
    for mm in _NAME_SPAN.finditer(sentence):
        span = _trim_name(sentence, mm.start(), mm.end(), qwords)
        if span is None:
            continue
        a, _ = _tok_range(toks, *span)
        prev = toks[a - 1].text.lower() if a > 0 else ""
        penalty = 0.0
        # places follow "in", "at", "from"...; people mostly do not
        if qtype == "where":
            penalty += -2.0 if prev in _PLACE_PREP else 0.0
        else:
            penalty += 2.0 if prev in _PLACE_PREP else -2.0
        if a == 0 and " " not in sentence[span[0] : span[1]]:
            penalty += 3  # one capitalised word opening the sentence is as likely "Soon" or "Various" as a name
        add(span[0], span[1], penalty)
    if qtype == "who":
        for mm in _AGENT.finditer(sentence):  # "built by the harbour board": the agent of a passive verb
            add(mm.start(1), mm.end(1), -1.0)


def _phrases(toks: list[SpanToken], qmask: list[bool], add: _Add, capitalised_only: bool = False) -> None:
    """Candidate phrases: runs of content words (joined by "of"/"and"/hyphens) that are not question words,
    near the question words; more question words around is better, lone adverbs and verbs are worse."""
    if not any(qmask):
        return
    n = len(toks)

    def content(i: int) -> bool:
        return bool(toks[i].stem) and not qmask[i] and toks[i].text not in _BREAK

    i = 0
    while i < n:
        if not content(i):
            i += 1
            continue
        j = i + 1
        while j < n and (
            content(j) or (toks[j].text.lower() in ("of", "and", "-") and j + 1 < n and content(j + 1))
        ):
            j += 1
        a, b = i, min(j, i + MAX_PHRASE_TOKENS)
        while b > a and not content(b - 1):
            b -= 1
        words = [t.text for t in toks[a:b]]
        if capitalised_only and not words[0][0].isupper():
            i = j
            continue
        density = sum(qmask[max(0, a - 4) : a]) + sum(qmask[b : b + 4])
        penalty = -0.5 * density
        if len(words) == 1:
            w = words[0].lower()
            if w.endswith("ly") or (a == 0 and words[0][0].isupper()):
                penalty += 2  # "particularly", "However": not answers
            elif w.endswith(("ed", "ing")):
                penalty += 1  # probably a verb
        add(toks[a].start, toks[b - 1].end, penalty)
        i = j


# -- the answerer ------------------------------------------------------------------------------------------------


@dataclass
class _Sentence:
    hit_index: int  # position of the best-ranked hit holding the sentence
    hit: Hit
    start: int  # offsets in hit.chunk.text
    end: int
    text: str
    context: str = ""  # the sentence before, when this one opens with a pronoun ("It was completed in 1897.")
    sim: float = 0.0
    lex: float = 0.0
    score: float = 0.0

    @property
    def abs_span(self) -> tuple[int, int]:
        return self.hit.chunk.start + self.start, self.hit.chunk.start + self.end


# A sentence opening with one of these is about something the sentence before named: for the word share it also
# has that sentence's words ("The Korvath bridge is 412 m long. It was completed in 1897." -> when was the Korvath
# bridge completed?). Only the score uses them; the quote stays the sentence itself.
_REFERS_BACK = re.compile(
    r"^\W*(?:it|its|he|his|she|her|they|their|this|these|those|there|the latter|the former)\b", re.I
)


_NAME = re.compile(r"(?<![\w'])[A-Z][\w'-]*[a-z][\w'-]*")


def question_names(question: str) -> list[str]:
    """The capitalised words of a question that name something ("Atlantis" in "What is the capital of
    Atlantis?"), the first word excepted (it is capitalised anyway)."""
    words = _NAME.findall(question.strip()[1:] if question.strip()[:1].isupper() else question)
    return [w for w in words if w.lower() not in CLAIM_STOPWORDS and len(w) >= 3]


def unnamed(question: str, hits: Sequence[Hit]) -> bool:
    """True when the question names things and none of them occurs in any passage: the passages are about
    something else ("the capital of Atlantis" over a page about Freedonia), however similar they read."""
    names = {w for n in question_names(question) for w in content_words(n)}
    return bool(names) and not any(names & set(content_words(h.chunk.text)) for h in hits)


def _candidates(hits: Sequence[Hit]) -> list[_Sentence]:
    from rag.sentences import split_sentences

    seen: dict[tuple[str, int, int], _Sentence] = {}
    for i, hit in enumerate(hits):
        c = hit.chunk
        prev = ""
        for a, b in split_sentences(c.text):
            key = (c.source, c.start + a, c.start + b)
            text = c.text[a:b]
            if key not in seen:  # hits are in rank order: the first holder is the best-ranked one
                seen[key] = _Sentence(i, hit, a, b, text, prev if _REFERS_BACK.match(text) else "")
            prev = text
    # a fragment cut by a chunk edge is dropped when another chunk holds the whole sentence
    spans_by_source: dict[str, list[tuple[int, int]]] = {}
    for src, a, b in seen:
        spans_by_source.setdefault(src, []).append((a, b))
    out = []
    for (src, a, b), s in seen.items():
        if not any(x <= a and b <= y and (x, y) != (a, b) for x, y in spans_by_source[src]):
            out.append(s)
    return out


class ExtractiveAnswerer:
    """rag.interfaces.Answerer without an LLM: quotes the best sentences verbatim (see the module doc)."""

    name = "extractive"

    def __init__(
        self,
        embedder: Embedder,
        min_relevance: float = 0.3,
        max_sentences: int = 2,
        min_lexical: float = MIN_LEXICAL,
        weak_lexical_margin: float = WEAK_LEXICAL_MARGIN,
        second_margin: float = SECOND_MARGIN,
        max_embedded: int = MAX_EMBEDDED,
        require_names: bool = True,
    ) -> None:
        if not -1.0 <= min_relevance <= 1.0:
            raise ValueError(f"min_relevance must be a cosine similarity between -1 and 1, got {min_relevance}")
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
        if max_embedded < 1:
            raise ValueError(f"max_embedded must be >= 1, got {max_embedded}")
        self.max_embedded = max_embedded
        self.require_names = require_names
        self.embedder = embedder
        self.min_relevance = min_relevance
        self.max_sentences = max_sentences
        self.min_lexical = min_lexical
        self.weak_lexical_margin = weak_lexical_margin
        self.second_margin = second_margin

    def relevant(self, passage_sim: float, sentence_sim: float, lexical: float) -> bool:
        """Answer or abstain. Relevance is the best cosine similarity to the question of a passage or of one of
        its sentences (a short question matches a sentence better than a long passage); it must reach
        ``min_relevance``, and ``min_relevance + weak_lexical_margin`` when the passages hold less than
        ``min_lexical`` of the question's (IDF-weighted) content words: a topical neighbour that names none
        of the question's words ("population of Paris" over a news article) is not an answer."""
        relevance = max(passage_sim, sentence_sim)
        if relevance < self.min_relevance:
            return False
        return lexical >= self.min_lexical or relevance >= self.min_relevance + self.weak_lexical_margin

    def score(
        self, query: str, hits: Sequence[Hit], follow_up: str | None = None
    ) -> tuple[list[_Sentence], float]:
        """The candidate sentences of ``hits`` scored against ``query``, best first, and the best passage's
        cosine similarity to the query (from ``dense_score``, or computed when a hit has none). ``follow_up`` is
        the elliptic question that ``query`` completes: its words are what the user asks about now."""
        ordered = sorted(hits, key=lambda h: h.rank) if all(h.rank > 0 for h in hits) else list(hits)
        sents = _candidates(ordered)
        if not sents:
            return [], 0.0
        qwords = list(dict.fromkeys(content_words(query)))
        sent_words = [set(content_words(s.text)) | set(content_words(s.context)) for s in sents]
        n = len(sents)
        # IDF within the candidates: a question word every sentence shares ("China") tells them apart less
        idf = {w: math.log(1 + n / (1 + sum(w in sw for sw in sent_words))) for w in qwords}
        asked_now = set(content_words(follow_up or "")) & set(idf)
        for w in asked_now:
            idf[w] *= FOLLOW_UP_WEIGHT
        total = sum(idf.values())
        qtype = question_type(query)
        for s, words in zip(sents, sent_words, strict=True):
            s.lex = sum(idf[w] for w in qwords if w in words) / total if total else 0.0
            s.score = W_LEX * s.lex + W_RANK / (1 + s.hit_index)
            s.score += W_TYPED * typed_answer_strength(query, s.text, qtype)  # a number, a date: what is asked
            if asked_now and not asked_now & words:
                s.score -= FOLLOW_UP_MISS
        # Embedding sentences is most of an answer's time: only the best by the cheap part of the score are
        # embedded (the cosine can lift a sentence by at most W_SIM, the lexical part separates them more).
        if len(sents) > self.max_embedded:
            sents = sorted(sents, key=lambda s: -s.score)[: self.max_embedded]
        # one embedding call: the query (cached from retrieval), the shortlisted sentences, and the passages
        # lacking a dense score
        no_dense = [h for h in ordered if h.dense_score is None]
        vecs = np.asarray(self.embedder.embed([query, *(s.text for s in sents), *(h.chunk.text for h in no_dense)]))
        qv = vecs[0]
        sims = vecs[1 : 1 + len(sents)] @ qv
        passage_sims = [float(h.dense_score) for h in ordered if h.dense_score is not None]
        passage_sims += [float(v @ qv) for v in vecs[1 + len(sents) :]]
        for s, sim in zip(sents, sims, strict=True):
            s.sim = float(sim)
            s.score += W_SIM * s.sim
        return sorted(sents, key=lambda s: -s.score), max(passage_sims)

    def answer(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        t0 = time.perf_counter()
        query = contextualize(question, history)
        standalone = query if query != question.strip() else None
        hits = tuple(hits)
        ranked, passage_sim = self.score(query, hits, question if standalone else None)
        if not ranked or not self.relevant(passage_sim, max(s.sim for s in ranked), max(s.lex for s in ranked)):
            return self._abstain(question, hits, standalone, t0)
        if self.require_names and unnamed(query, hits):
            return self._abstain(question, hits, standalone, t0)

        best = ranked[0]
        chosen = [best]
        qwords = set(content_words(query))
        covered = set(content_words(best.text)) & qwords
        for s in ranked[1:]:
            if len(chosen) >= self.max_sentences or s.score < best.score - self.second_margin:
                break
            words = set(content_words(s.text)) & qwords
            overlaps = any(
                s.hit.chunk.source == c.hit.chunk.source and _overlap(s.abs_span, c.abs_span) for c in chosen
            )
            if not overlaps and words - covered:  # quoted only when it brings question words the best lacks
                chosen.append(s)
                covered |= words

        # the type of the question as asked, unless it is elliptic ("and in 2018?" keeps "how many")
        qtype = question_type(question)
        qtype = question_type(query) if qtype == "other" else qtype
        short = None
        found = []  # (key, sentence index, start, end): the best span of each quoted sentence
        for i, s in enumerate(chosen):
            span = _best_span(query, s.text, qtype)
            if span and (span[2] - span[1]) < len(s.text):
                # the best sentence is preferred, but "14" right before "nations" in the second one beats a
                # number far from the question's words in the first
                found.append((span[0] + LATER_SENTENCE_PENALTY * i, i, span[1], span[2]))
        if found:
            _, i, a, b = min(found)
            short = chosen[i].text[a:b]
            chosen.insert(0, chosen.pop(i))  # the quote holding the short answer comes first
        notes: tuple[str, ...] = ()
        conflict = conflicting(query, qtype, chosen[0], short, ranked) if short else None
        if conflict is not None:
            other, other_short = conflict
            chosen = [chosen[0], other]
        citations = tuple(_citation(i + 1, s) for i, s in enumerate(chosen))
        quotes = "\n\n".join(f'"{c.text}" [{c.n}]' for c in citations)
        text = f"{short} — {quotes}" if short else quotes
        if conflict is not None:  # each value with the quote it comes from, after a lead that says they disagree
            first, second = (f'{v} — "{c.text}" [{c.n}]' for v, c in zip((short, conflict[1]), citations, strict=True))
            text = f"{CONFLICT_LEAD} {first}\n\n{second}"
            short, notes = None, (NOTE_CONFLICT,)
        return Answer(
            question=question,
            answer=text,
            short_answer=short,
            abstained=False,
            citations=citations,
            hits=hits,
            timings={"answer": (time.perf_counter() - t0) * 1000},
            backend=self.name,
            standalone_question=standalone,
            notes=notes,
        )

    def stream(self, question: str, hits: Sequence[Hit], history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        """The extractive answer is ready at once: its text in one piece, then the Answer."""
        ans = self.answer(question, hits, history)
        yield ans.answer
        yield ans

    def _abstain(self, question: str, hits: tuple[Hit, ...], standalone: str | None, t0: float) -> Answer:
        return Answer(
            question=question,
            answer=ABSTAIN_TEXT,
            short_answer=None,
            abstained=True,
            hits=hits,
            timings={"answer": (time.perf_counter() - t0) * 1000},
            backend=self.name,
            standalone_question=standalone,
        )


def _value(text: str) -> str:
    return " ".join(claim_tokens(text))


def conflicting(
    query: str, qtype: str, best: _Sentence, short: str, ranked: Sequence[_Sentence]
) -> tuple[_Sentence, str] | None:
    """A sentence of another document that answers the same question with another value, and that value; None
    when no candidate disagrees with ``short`` (the best sentence's short answer).

    Only typed answers are compared (a number, a date, a name; for other questions two capitalised names), and the
    rival must score within CONFLICT_MARGIN of the best and name everything the question names: "the bridge is 42
    metres long" does not contradict "the Korvath bridge is 412 metres long" about the Korvath bridge."""
    typed = qtype != "other" or short[:1].isupper()
    if not typed or best.lex < CONFLICT_MIN_LEX:
        return None
    names = {w for n in question_names(query) for w in content_words(n)}
    mine = _value(short)
    for s in ranked:
        if s.score < best.score - CONFLICT_MARGIN:
            break
        if s is best or s.hit.chunk.source == best.hit.chunk.source or s.lex < CONFLICT_MIN_LEX:
            continue
        if names - set(content_words(s.text)) - set(content_words(s.context)):
            continue
        span = _best_span(query, s.text, qtype)
        if span is None or span[0] > CONFLICT_MAX_DISTANCE:
            continue
        other = s.text[span[1] : span[2]]
        theirs = _value(other)
        if qtype == "other" and not other[:1].isupper():
            continue
        if not theirs or not mine or theirs in mine or mine in theirs:
            continue  # the same value, or one holds the other ("1897" / "May 1897")
        return s, other
    return None


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _citation(n: int, s: _Sentence) -> Citation:
    from rag.citations import citation_for_span

    return citation_for_span(n, s.hit, s.start, s.end, supported=True, score=s.score)
