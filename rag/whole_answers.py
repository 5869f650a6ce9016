"""Is a short answer a whole one? The extractive answerer's second check, made before a span is put in bold.

``whole_answer``: a short answer span is kept only when it is a whole constituent (a named entity or a noun
  phrase, from spaCy's analysis in ``rag.nlp``), widened to the constituent it cuts when that one is short, and
  for who/where/when/how-many questions only when it is a thing of the asked kind; else there is no short answer
  and the quote stands alone.

``bare_modifier`` refuses a span of modifiers only ("most important") or one that begins with a conjunction, and
``best_typed`` finds the value of the asked kind nearest the question's words when the patterns found none whole.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.answer_check import Asked, _stems, kind_labels, typed_values
from rag.nlp import Analysis, Span, bare

MAX_WIDENED_WORDS = 6  # a cut span is widened to its constituent only when that is this short


def whole_answer(a: Asked, analysis: Analysis, start: int, end: int) -> tuple[int, int] | None:
    """``(start, end)`` of the whole answer that the candidate span ``[start, end)`` of the sentence is, or None
    when it is a fragment with no whole answer around it.

    For who/where/when/how-many questions the span must hold a value of the asked kind and cut none (the
    patterns' "at most two", "William of Montreuil"), or be widened to the short entity of that kind it cuts.
    Otherwise it must be a whole constituent (an entity, a noun phrase, code in backticks), or at least cut none
    and not be a lone verb or adverb; a span that cuts one is widened to it when that one is short. A how/why
    question ("How does citeqa decide to abstain?") has no short answer: the quote is the answer."""
    qstems = frozenset(_stems(a.question))
    if not wants_short_answer(a):
        return None
    if not _on_word_edges(analysis.text, start, end):
        return _widen(a, analysis, start, end, qstems)
    labels = kind_labels(a)
    if labels:
        if _holds_value(a, analysis, start, end) or (a.kind in ("who", "where") and _proper_run(analysis, start, end)):
            return _trim(analysis.text, Span(start, end, analysis.text[start:end]), qstems)
        return _widen(a, analysis, start, end, qstems)
    exact = analysis.constituent(start, end)
    if exact is not None:
        span = _trim(analysis.text, exact, qstems)
        return None if _bare_head(analysis.text, exact, span) else span
    if not _cuts(analysis, start, end) and not _lone_modifier(analysis, start, end):
        return _trim(analysis.text, Span(start, end, analysis.text[start:end]), qstems)
    return _widen(a, analysis, start, end, qstems)


_MANNER = re.compile(r"^\W*(?:how|why)\b(?!\s+(?:many|much|long|old|far|large|big|tall|high|often|fast|heavy|"
                     r"deep|wide|soon|early|late)\b)|\bin what way\b", re.I)


def wants_short_answer(a: Asked) -> bool:
    """Whether a short answer can answer the question at all: not for how (manner) and why questions."""
    return not _MANNER.search(a.question)


def _widen(a: Asked, analysis: Analysis, start: int, end: int, qstems: frozenset[str]) -> tuple[int, int] | None:
    labels = kind_labels(a)
    for s in analysis.covering(start, end):
        if len(s.text.split()) > MAX_WIDENED_WORDS or _stems(s.text) <= qstems:
            continue
        if labels and s.label not in labels and not _typed_phrase(a, analysis, s):
            continue
        span = _trim(analysis.text, s, qstems)
        return None if _bare_head(analysis.text, s, span) else span
    return None


def _on_word_edges(text: str, start: int, end: int) -> bool:
    """The span neither starts nor ends inside a word ("fail" out of "--fail-under", "land" of "land-hungry")."""
    def inner(ch: str) -> bool:
        return ch.isalnum() or ch in "-_"
    return not (start > 0 and inner(text[start - 1]) and inner(text[start])) and not (
        end < len(text) and inner(text[end - 1]) and inner(text[end]))


def _cuts(analysis: Analysis, start: int, end: int) -> bool:
    """Some entity or noun phrase straddles an edge of the span ("least 0" of "at least 0")."""
    return any(s.start < start < s.end or s.start < end < s.end for s in (*analysis.entities, *analysis.phrases))


def _lone_modifier(analysis: Analysis, start: int, end: int) -> bool:
    """The span's words are only verbs, adverbs, adjectives or auxiliaries ("focuses", "complete")."""
    pos = [w.pos for w in analysis.words if start <= w.start and w.end <= end and w.text[:1].isalnum()]
    return bool(pos) and all(p in ("VERB", "ADV", "ADJ", "AUX", "ADP", "SCONJ", "CCONJ", "PART", "DET") for p in pos)


# the thing a what/which question asks the kind of: "what type of graph", "which Turing machine"
_KIND_OF = re.compile(r"\b(?:what|which)\s+(?:types?|kinds?|sorts?|forms?|variet(?:y|ies)|categor(?:y|ies)|"
                      r"class(?:es)?)\s+of\s+(?:an?\s+|the\s+)?(?P<noun>[\w-]+)", re.I)
_WHAT_NOUN = re.compile(r"\b(?:what|which)\s+(?!(?:is|are|was|were|do|does|did|can|could|would|will|has|have|had|"
                        r"should|might|must|may)\b)(?P<noun>[\w-]+)", re.I)
_MODIFIER_POS = frozenset(("ADJ", "ADV", "DET", "ADP", "AUX", "VERB", "PART", "CCONJ", "SCONJ"))


_CONJUNCTION = re.compile(r"(?:and|or|but|nor)\b", re.I)


def bare_modifier(a: Asked, analysis: Analysis, start: int, end: int) -> bool:
    """The span begins with a conjunction (the rest of "Pizza Hut and Domino's" once the question's own "Pizza
    Hut" is trimmed: "and Domino" is a fragment), or the span of an untyped question (what/which) is only
    modifiers ("most important", "typical", "any finite") and the word after it is not the thing the question
    asks the kind of: "linear" in "linear time" answers "what type of time?" and is kept; "most important" in "its
    most important naval base" does not answer "what was the naval base called?". On the SQuAD tune split, 74% of
    the untyped short answers shown were wrong, most of them such modifiers."""
    if _CONJUNCTION.match(analysis.text, start):
        return True
    if kind_labels(a):
        return False
    words = [w for w in analysis.words if start <= w.start and w.end <= end and w.text[:1].isalnum()]
    if not words or not all(w.pos in _MODIFIER_POS for w in words):
        return False
    after = next((w for w in analysis.words if w.start >= end and w.text[:1].isalnum()), None)
    m = _KIND_OF.search(a.question) or _WHAT_NOUN.search(a.question)
    return after is None or m is None or not (_stems(after.text) & _stems(m.group("noun")))


def _proper_run(analysis: Analysis, start: int, end: int) -> bool:
    """Every word of the span is a proper noun (or "of"/"de"/"the" between them), cutting no entity."""
    words = [w for w in analysis.words if start <= w.start and w.end <= end and w.text[:1].isalnum()]
    if not words or _cuts_entity(analysis, start, end):
        return False
    return words[0].pos == "PROPN" and words[-1].pos == "PROPN" and all(
        w.pos == "PROPN" or w.text.lower() in ("of", "de", "the", "von", "van", "du", "da", "and") for w in words)


def _cuts_entity(analysis: Analysis, start: int, end: int) -> bool:
    return any(s.start < start < s.end or s.start < end < s.end for s in analysis.entities)


def _holds_value(a: Asked, analysis: Analysis, start: int, end: int) -> bool:
    """The span holds a whole value of the asked kind and cuts no value of that kind."""
    inside = False
    for v in typed_values(a, analysis):
        if start <= v.start and v.end <= end:
            inside = True
        elif v.start < end and start < v.end:
            return False  # it cuts a value: "least 0" out of "at least 0"
    return inside


def _typed_phrase(a: Asked, analysis: Analysis, s: Span) -> bool:
    """A noun phrase that holds a value of the asked kind counts as one ("2,000 troops" for how many)."""
    if s.label:
        return False
    return any(s.start <= v.start and v.end <= s.end for v in typed_values(a, analysis))


def best_typed(a: Asked, analysis: Analysis, near: Sequence[int]) -> tuple[int, int] | None:
    """The value of the asked kind closest to the question's words in the sentence (``near``: character offsets
    of those words), or None when the sentence holds none."""
    values = typed_values(a, analysis)
    if not values:
        return None
    if a.kind == "who":  # a person before an organisation before a people
        order = {"PERSON": 0, "ORG": 1, "NORP": 2, "GPE": 3}
        values.sort(key=lambda v: order.get(v.label, 4))
    def distance(v: Span) -> int:
        return min((abs(p - v.start) if p < v.start else abs(p - v.end) for p in near), default=0)
    best = min(values, key=lambda v: (distance(v) // 40, values.index(v), distance(v)))
    return _trim(analysis.text, best)


def _bare_head(text: str, s: Span, span: tuple[int, int]) -> bool:
    """The phrase lost its leading words to the question and one common noun is left ("the chunk size" asked
    "what is the chunk overlap?" -> "size"): that is the asked attribute's neighbour, not an answer."""
    piece = text[span[0] : span[1]]
    return span[0] > s.start + 4 and " " not in piece and piece.islower() and not s.label


def _trim(text: str, s: Span, qstems: frozenset[str] = frozenset()) -> tuple[int, int]:
    """The span without a leading article, a trailing possessive or punctuation, backticks, and the question's
    own words at its edges ("the `/clear` command" asked "which chat command ...?" -> "/clear")."""
    a, b = s.start, s.end
    words = list(re.finditer(r"\S+", text[a:b]))
    def dropped(w: str, edge: tuple[str, ...]) -> bool:  # the question's own word, or an article at an edge
        stems = _stems(w)
        return stems <= qstems if stems else w.strip("`'\"").lower() in edge
    while len(words) > 1 and dropped(words[-1].group(0), ("the", "a", "an", "of", "in", "on", "at", "and")):
        words.pop()
    while len(words) > 1 and dropped(words[0].group(0), ("the", "a", "an")):
        words.pop(0)
    a, b = bare(text, a + words[0].start(), a + words[-1].end())
    while b > a and text[b - 1] in ".,;:":
        b -= 1
    if b - a > 2 and text[a] == "`" and text[b - 1] == "`":
        a, b = a + 1, b - 1
    return a, b
