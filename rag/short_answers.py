"""Question types and short-answer spans: what kind of thing a question asks for (``question_type``: a number,
a date, a person, a place, or other) and the candidate spans of a sentence that could be its short answer
(numbers with their qualifiers for how many/much, dates for when, names for who/where, the phrase next to the
question's words otherwise), ranked by their distance to the question's words. ``rag.whole_answers`` then keeps a
candidate only when it is a whole constituent of the expected kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rag.text import CLAIM_STOPWORDS, SpanToken, content_words, span_tokens

if TYPE_CHECKING:
    from rag.nlp import Span, Word

MAX_PHRASE_TOKENS = 6  # SQuAD answers to "what" questions are short noun phrases (median 2-3 words)


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


# who/whom/whose/where/when in a question with another question word, before more words, not after a preposition: a
# relative pronoun ("What position does the footballer who plays for Benfica play?", "the city where she was
# born"), which says nothing about what is asked; "... was founded by who?" and "In 1962, who ..." still ask it
_OTHER_WH = re.compile(r"\b(?:what|which|how|name)\b", re.I)
_RELATIVE = re.compile(r"(?<!\bby)(?<!\bto)(?<!\bwith)(?<!\bfor)(?<!\bfrom)(?<!\bof)(?<!\bat)(?<!\bin)"
                       r"(?<=[\w,’'])\s+(?:who(?:m|se)?|where|when)(?:['’]s)?\b(?=\s+\w)", re.I)


def _without_relatives(question: str) -> str:
    """``question`` with its relative who/where/when blanked out (the same length, so offsets still hold)."""
    if not _OTHER_WH.search(question):
        return question
    return _RELATIVE.sub(lambda m: " " * len(m.group(0)), question)


def question_type(question: str) -> str:
    """``num`` | ``date`` | ``who`` | ``where`` | ``other``; the earliest cue wins ("When ... how many" is a date).
    A relative who/where/when is no cue (``_RELATIVE``)."""
    found = []
    question = _without_relatives(question)
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


def _proximity(toks: list[SpanToken], qmask: list[bool], a: int, b: int) -> int:
    """Tokens between the span ``toks[a:b]`` and the nearest question word of the sentence (99 when none)."""
    best = 99
    for i, hit in enumerate(qmask):
        if hit:
            d = a - i - 1 if i < a else i - b if i >= b else 0
            best = min(best, max(d, 0))
    return best


def _tok_range(toks: Sequence[SpanToken] | Sequence[Word], start: int, end: int) -> tuple[int, int]:
    """The token (or word) range ``[a, b)`` that covers the characters ``[start, end)``."""
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


def _best_span(question: str, sentence: str, qtype: str | None = None,
               entities: Sequence[Span] = ()) -> tuple[float, int, int] | None:
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
        _names(qtype, sentence, toks, qwords, add, entities)
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


# What spaCy's label of a name says of it as the answer to who (where), in tokens of distance: "stopped by the
# Byzantine general Alexius Komnenos" asked who stopped him is the person, not "Asia Minor" nearer the question.
WHO_LABEL_PENALTY = {"PERSON": -1.0, "GPE": 3.0, "LOC": 3.0, "FAC": 3.0}
WHERE_LABEL_PENALTY = {"PERSON": 3.0, "GPE": -1.0, "LOC": -1.0, "FAC": -1.0}


def _label_penalty(qtype: str, entities: Sequence[Span], start: int, end: int) -> float:
    table = WHO_LABEL_PENALTY if qtype == "who" else WHERE_LABEL_PENALTY
    labels = {e.label for e in entities if e.start < end and start < e.end}
    return min((table.get(lab, 0.0) for lab in labels), default=0.0) if labels else 0.0


def _names(qtype: str, sentence: str, toks: list[SpanToken], qwords: set[str], add: _Add,
           entities: Sequence[Span] = ()) -> None:
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
        penalty += _label_penalty(qtype, entities, *span)
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
