"""Does a sentence answer the question, or is it only near it? And is a short answer a whole one?

The check of the extractive answerer made before anything is quoted (``rag.whole_answers`` has the other: is a
short answer a whole one?):

- ``evidence_gap``: what the question is specifically about must be in the sentence or its immediate context
  (the sentence before it): the things it names ("Freedonia", "Herve"), its numbers and years ("in 2018"), and
  for how many/much the counted thing ("how many employees" needs employees, not offices); and the sentence must
  hold a thing of the asked kind that the question does not already name (a person or organisation for who, a
  place for where, a date for when, a number for how many); a question about what is not so needs a sentence
  that says something is not so; and the sentence must not say something else than the question (``contrast``):
  another qualifier of its noun ("extensive time" asked about "limited time"), the opposite of its word ("most"
  asked about "least") or another count of its noun ("two graphs" asked about "three"). The gap is returned as a phrase
  for the user ("does not mention 2019"); None means no gap.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from difflib import SequenceMatcher
from functools import lru_cache
from typing import NamedTuple

from rag.nlp import PERSON_LIKE, PLACE_LIKE, QUANTITY_LIKE, TIME_LIKE, Analysis, Span
from rag.short_answers import _DATE_SPAN, _NUM_SPAN, _SHORT_YEAR
from rag.text import CLAIM_STOPWORDS, content_words, folded_words
from rag.types import Hit

# -- what the question names -------------------------------------------------------------------------------------

# a capitalised word ("Atlantis") or one with a capital inside it ("macOS", "iPhone", "eBay")
_NAME = re.compile(r"(?<![\w'])(?:[A-Z][\w'-]*[a-z][\w'-]*|[a-z]+[A-Z][\w'-]*)")


def question_names(question: str) -> list[str]:
    """The capitalised words of a question that name something ("Atlantis" in "What is the capital of
    Atlantis?", "macOS" in "Where does it live on macOS?"), the first word excepted (it is capitalised
    anyway)."""
    words = _NAME.findall(question.strip()[1:] if question.strip()[:1].isupper() else question)
    words = [re.sub(r"['’]s?$", "", w) for w in words]  # "Robert's" names Robert
    return [w for w in words if w.lower() not in CLAIM_STOPWORDS and len(w) >= 3]


def unnamed(question: str, hits: Sequence[Hit]) -> bool:
    """True when the question names things and none of them occurs in any passage: the passages are about
    something else ("the capital of Atlantis" over a page about Freedonia), however similar they read."""
    names = {w for n in question_names(question) for w in content_words(n)}
    return bool(names) and not any(names & set(content_words(h.chunk.text)) for h in hits)


def fold(text: str) -> str:
    """Accents dropped and lower case: "Hervé" and "Herve" are one name."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)).lower()


_ALTERNATIVES = re.compile(r"[^,;:?]+\sor\s[^,;:?]+")  # "Sid Haig or Vic Darchinyan"
_DECADE = re.compile(r"(?<![\w'])(\d{3})0s\b")
_QNUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?![\d])")
_HOW_MANY = re.compile(r"\bhow (?:many|much)\s+(?:(?:more|less|fewer)\s+)?([^\W\d_]+)", re.I)  # "how much less memory"
_NOT_COUNTED = frozenset({"do", "does", "did", "is", "are", "was", "were", "has", "have", "had", "can", "could",
                          "will", "would", "should", "of", "in", "time", "times", "more", "less"})
_COMPARES = re.compile(r"\b(?:or|both|either|neither|same|older|younger|first|earlier|later|more|less)\b", re.I)
# a noun followed by a relative clause in the middle of a question: "the film that was shot in ...", "the
# politician who was premier", "a German musician whose godfather ..."
_CHAINED = re.compile(r"\b[a-z]{3,}\s+(?:that|who|whose|which|where)\s+(?:was|were|is|are|has|had|did|does|"
                      r"\w+ed|\w+s)\b")


# a relation of something named: "the director of Northern Lights", "the capital of the country where ..."
_RELATION_OF = re.compile(r"\b(?:director|author|writer|founder|creator|singer|member|president|owner|father|mother|"
                          r"wife|husband|son|daughter|capital|headquarters|producer|star|designer|architect|leader|"
                          r"coach|manager|captain|composer|publisher|developer|host|mayor|governor|chairman|"
                          r"successor|predecessor)s?\s+of\s+(?:the\s+|a\s+|an\s+)?(?:[A-Z0-9\"']|\w+\s+"
                          r"(?:that|who|whose|which|where)\b)")


def chains_facts(question: str) -> bool:
    """The question chains two facts, so its answer needs a second passage: a relative clause in its middle
    ("the film that was shot in Leland") or a relation of something named ("the director of Northern Lights")."""
    return bool(_CHAINED.search(question) or _RELATION_OF.search(question))


def _name_phrases(question: str) -> list[str]:
    body = question.strip()[1:] if question.strip()[:1].isupper() else question
    return re.findall(r"(?<![\w'])[A-Z][\w'-]*(?:\s+(?:of\s+|the\s+|de\s+)?[A-Z][\w'-]*)*", body)


_GENERIC = re.compile(r"^(?:kind|type|sort|name|part|one|thing|way|term|number|amount|example|word|year|date|"
                      r"time|people|person|place)s?$", re.I)
_DURATION_Q = re.compile(r"\bhow (?:long|old)\b|\b(?:years|months|weeks|days|hours|minutes|age)\b", re.I)


# The kind is checked only when the question says it outright: "which port" or "what size" may ask for a place
# or a number, or for something else ("port 7860" is a number; "the size of the index" a phrase).
_STRONG_KIND = {
    "who": re.compile(r"^\W*(?:who|whom)\b|\b(?:by|to|with|for) whom\b", re.I),
    "where": re.compile(r"^\W*where\b", re.I),
    "date": re.compile(r"^\W*when\s+(?:did|was|were|is|are|does|do|will|has|have|had|can|could|would)\b|"
                       r"\b(?:what|which) year\b", re.I),
    "num": re.compile(r"\bhow (?:many|much)\b", re.I),
}


@dataclass(frozen=True)
class Asked:
    """What a question is specifically about: its kind (``rag.short_answers.question_type``), the names and
    numbers it mentions as written, and the counted thing of a how-many/much question."""

    question: str
    kind: str
    stated: bool = False  # the question says the kind outright (see ``states_kind``)
    names: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    counted: str | None = None  # as written: "employees"
    compares: bool = False  # "X or Y", "both X and Y", "the same ...": its names are alternatives or a pair
    multi_part: bool = False  # it chains two facts ("the director of the film that was shot in Leland in 1986")
    attributes: tuple[str, ...] = ()  # its other content words ("chairs", "board" in "who chairs the board of Acme?")
    negated: bool = False  # it asks what is not so ("What cannot be solved by ...?"; see ``negated``)
    qualified: tuple[tuple[str, str], ...] = ()  # (qualifier, noun) pairs: ("limited", "time"); see qualifiers
    counts: tuple[tuple[str, str], ...] = ()  # (number, noun) pairs: ("three", "graphs"); see ``counts_of``

    @property
    def wants_duration(self) -> bool:
        return bool(_DURATION_Q.search(self.question))


def asked(question: str, kind: str, analysis: Analysis | None = None, kind_from: str | None = None) -> Asked:
    """The Asked record of ``question`` (``kind`` from rag.short_answers.question_type). With the question's
    ``analysis`` the counted thing is the first noun after "how many" ("how many combinatory problems" counts
    problems); without, the word right after it. ``kind_from``: the text whose wording decides whether the kind
    is stated outright (an elliptic follow-up's standalone question), else ``question``."""
    names = tuple(dict.fromkeys(question_names(question)))
    if analysis is not None:  # a capitalised word the model reads as no name ("Who did Emma Marry?") is dropped
        proper = {w.text for w in analysis.words if w.pos in ("PROPN", "NOUN", "X")}
        proper |= {t for e in analysis.entities for t in e.text.split()}
        names = tuple(n for n in names if n in proper or any(p.startswith(n) for p in proper))
    numbers = tuple(dict.fromkeys(n.rstrip(",.").replace(",", "") for n in _QNUMBER.findall(question)))
    m = _HOW_MANY.search(question)
    counted = m.group(1) if m and m.group(1).lower() not in _NOT_COUNTED and content_words(m.group(1)) else None
    if m and counted and analysis is not None:
        nouns = [w for w in analysis.words if w.start >= m.start(1) and w.pos in ("NOUN", "PROPN", "VERB", "AUX")]
        counted = nouns[0].text if nouns and nouns[0].pos in ("NOUN", "PROPN") else None
    pat = _STRONG_KIND.get(kind)
    stated = bool(pat and pat.search(kind_from or question))
    name_stems = {w for n in names for w in _stems(n)}
    attributes = tuple(dict.fromkeys(w for w in re.findall(r"[^\W\d_]+", question)
                                     if _stems(w) and not _stems(w) <= name_stems and not _GENERIC.search(w)))
    compares = len(names) >= 2 and bool(_COMPARES.search(question))
    multi_part = bool(_CHAINED.search(question)) or len(_name_phrases(question)) + len(numbers) >= 3
    qualified = qualifiers(analysis, names) if analysis is not None else ()
    counts = counts_of(analysis, small=True) if analysis is not None else ()
    return Asked(question, kind, stated, names, numbers, counted, compares, multi_part, attributes,
                 negated(question), qualified, counts)


# A question that asks what is *not* so needs a sentence that says something is not so: "What cannot be solved by
# mechanical steps?" is not answered by "the problem may be solved by mechanical application of mathematical
# steps". SQuAD 2.0's unanswerable questions are often an answerable one with "not" put in; on the tune article
# (Computational_complexity_theory) 58 of its 191 unanswerable questions that were answered, and 5 of its 188
# answerable ones, held a negation their quoted sentence lacked, 0 of those 5 once the idioms below are left out
# and the sentence's negations include "neither", "≠" and un-/non- words.
_NOT_Q = re.compile(r"\b(?:not|cannot|never|n't)\b|n't\b", re.I)
_NOT_IDIOM = re.compile(r"\b(?:whether or not|or not|may or may not|if not|not only|not just)\b", re.I)
_NOT_S = re.compile(r"\b(?:not|no|never|cannot|neither|nor|none|nothing|without|unlike|lacks?|fails?|failed|"
                    r"un[a-z]{3,}|non-?[a-z]{3,})\b|n't\b|≠", re.I)


def negated(question: str) -> bool:
    """The question asks what is not so: it holds "not", "cannot", "never" or "n't", an idiom ("whether or not",
    "not only") aside."""
    return bool(_NOT_Q.search(_NOT_IDIOM.sub(" ", question)))


# -- is the evidence there? --------------------------------------------------------------------------------------

KIND_NOUN = {"who": "person or organisation", "where": "place", "date": "date", "num": "number"}


def _stems(text: str) -> set[str]:
    return set(_stem_set(text))


@lru_cache(maxsize=1 << 14)
def _stem_set(text: str) -> frozenset[str]:
    return frozenset(content_words(fold(text)))


def _named(name: str, stems: set[str]) -> bool:
    """``name``'s words are all in ``stems``, a long word also when spelt one letter off ("Hatmanis"), a name
    also as the adjective made from it ("China" / "Chinese": they share all but the name's last letter)."""
    for w in _stems(name):
        if w in stems:
            continue
        if len(w) >= 5 and any(x.startswith(w[:-1]) and len(x) > len(w) for x in stems):
            continue
        if len(w) < 6 or not any(len(x) >= 5 and x[0] == w[0] and SequenceMatcher(None, w, x).ratio() >= 0.85
                                 for x in stems):
            return False
    return True


Similar = Callable[[str, Sequence[str]], float]  # the best cosine of a word to some others (the embedder's)
COUNTED_SIMILARITY = 0.65  # "nations"/"countries", "troops"/"soldiers" pass; "employees"/"offices" (0.58) do not


def missing_terms(a: Asked, window: str, sentence: Analysis | None = None,
                  similar: Similar | None = None) -> list[str]:
    """The question's names, numbers and counted thing (as the question writes them) that ``window`` lacks. The
    counted thing also counts as there when the noun a number of ``sentence`` counts means the same (``similar``
    at least COUNTED_SIMILARITY: "14 countries" for "how many nations")."""
    stems = _stems(window)
    digits = {n.replace(",", "") for n in _QNUMBER.findall(window)}
    gone = [n for n in a.names if not _named(n, stems)]
    if a.compares and len(gone) < len(a.names):
        gone = []  # "Which band was formed first, The Exies or Circus Diablo?": one of them is enough
    decades = set(_DECADE.findall(a.question))  # "in the 1950s": any year of it ("1955")
    gone += [n for n in a.numbers if not _has_number(n, digits)
             and not (n[:3] in decades and any(len(d) == 4 and d[:3] == n[:3] for d in digits))]
    if a.counted and not _stems(a.counted) <= stems:
        counted = counted_nouns(sentence) if sentence is not None else []
        if not (counted and similar is not None and similar(a.counted, counted) >= COUNTED_SIMILARITY):
            gone.append(a.counted)
    return gone


def _has_number(n: str, digits: set[str]) -> bool:
    """``n`` (a number of the question) is among ``digits`` (the window's), written the way texts shorten or
    lengthen years: "70" in "1970s", "2004" as the "04" of "2003–04"; a number below 10 is usually spelt out
    ("4-letter" / "four letters") and is not required."""
    if n in digits or (n.isdigit() and int(n) < 10):
        return True
    if len(n) == 2 and any(len(d) == 4 and d.endswith(n) for d in digits):
        return True
    return len(n) == 4 and n[2:] in digits


def counted_nouns(analysis: Analysis) -> list[str]:
    """The nouns that numbers count in the sentence: the first noun within three words after each number."""
    words = analysis.words
    out = []
    for i, w in enumerate(words):
        if w.pos == "NUM":
            nxt = next((x for x in words[i + 1 : i + 4] if x.pos in ("NOUN", "PROPN")), None)
            if nxt is not None:
                out.append(nxt.text)
    return list(dict.fromkeys(out))


def kind_labels(a: Asked) -> frozenset[str]:
    if a.kind == "who":
        return PERSON_LIKE
    if a.kind == "where":
        return PLACE_LIKE
    if a.kind == "date":
        return TIME_LIKE
    if a.kind == "num":
        return QUANTITY_LIKE | TIME_LIKE if a.wants_duration else QUANTITY_LIKE
    return frozenset()


def typed_values(a: Asked, analysis: Analysis) -> list[Span]:
    """The entities of ``analysis`` of the asked kind that are not just the question's own words (the answer to
    "Who founded Acme?" is not "Acme")."""
    qstems = _stems(a.question)

    def own(text: str) -> bool:  # the question's own words; a number only where the question writes it alone
        if a.kind == "num" and _BARE_NUMBER.fullmatch(text):  # the "6" of "MiniLM-L6" is no 6 of the question
            return re.search(rf"(?<![\w.,]){re.escape(text)}(?!\w|[.,]\d)", a.question) is not None
        return _stems(text) <= qstems

    out = [e for e in analysis.entities_of(kind_labels(a)) if not own(e.text)]
    if a.kind == "who":  # "meets every March in Marbury": a place, not who
        out = [e for e in out if e.label in ("PERSON", "ORG") or _word_before(analysis, e.start) not in _PLACE_PREP]
    if a.kind == "date":  # "for ten years" says how long, not when
        out = [e for e in out if not _DURATION.search(e.text)]
    if a.kind == "who":  # "built for people who ...": a common noun that names people answers who, too
        out += [Span(w.start, w.end, w.text, "PEOPLE") for w in analysis.words
                if w.pos in ("NOUN", "PRON") and _people(w.text) and not own(w.text)]
    if a.kind in ("who", "where"):  # a proper noun the model did not label ("PSPACE", "Adriatic")
        labelled = [(e.start, e.end) for e in analysis.entities]  # "March" of "every March" is a date
        for w in analysis.words:
            if w.pos == "PROPN" and not any(s <= w.start < e for s, e in labelled) and not _stems(w.text) <= qstems:
                if a.kind == "who" and _word_before(analysis, w.start) in _PLACE_PREP:
                    continue
                out.append(Span(w.start, w.end, w.text, "PROPN"))
    if a.kind == "num":  # numbers spaCy leaves unlabelled ("128" in a table row): a number word of its own
        labelled = [(e.start, e.end) for e in out]
        for w in analysis.words:
            if w.pos == "NUM" and not any(s <= w.start < e for s, e in labelled) and not own(w.text):
                out.append(Span(w.start, w.end, w.text, "CARDINAL"))
    if a.kind in ("num", "date"):  # what the patterns see that the model did not label ("in 911", "at most two")
        seen = [(e.start, e.end) for e in out]
        pats = [_DATE_SPAN, _SHORT_YEAR] if a.kind == "date" else [_NUM_SPAN]
        for pat in pats:
            for m in pat.finditer(analysis.text):
                g = 1 if pat is _SHORT_YEAR else 0
                st, en = m.start(g), m.end(g)
                if not any(x < en and st < y for x, y in seen) and not own(m.group(g)):
                    out.append(Span(st, en, m.group(g), "DATE" if a.kind == "date" else "CARDINAL"))
                    seen.append((st, en))
    if a.kind == "num" and not a.wants_duration:  # a bare year is not a count
        out = [e for e in out if not re.fullmatch(r"(?:1\d{3}|20\d{2})s?", e.text)]
    return out


_PEOPLE_WORDS = ("people person users teams staff developers engineers researchers scientists students customers "
                 "members employees workers readers authors owners administrators operators maintainers volunteers "
                 "anyone everyone someone whoever").split()
# the words as written too: "people" is a stop word, so it has no stem
_PEOPLE = frozenset(_PEOPLE_WORDS) | frozenset(content_words(" ".join(_PEOPLE_WORDS)))


def _people(word: str) -> bool:
    """``word`` is a common noun for people ("people", "users", "a team"), which answers who as a name does."""
    return word.lower() in _PEOPLE or bool(_stems(word) & _PEOPLE)


_BARE_NUMBER = re.compile(r"\d[\d.,]*")
_PLACE_PREP = frozenset({"in", "at", "near", "from", "into", "across", "to", "of"})
_DURATION = re.compile(r"^(?:for\s+)?(?:\w+[\s-])*(?:years?|months?|weeks?|days?|hours?|minutes?|seconds?)$", re.I)


# -- the thing asked about, qualified otherwise ------------------------------------------------------------------
# SQuAD 2.0's unanswerable questions often swap the word that qualifies a noun: "a *manual* application of
# mathematical steps" over "a *mechanical* application of mathematical steps", "*limited* time" over "*extensive*
# time". Such a sentence names the question's noun with a qualifier of its own, and holds neither the
# question's qualifier nor a word close to it (cosine below QUALIFIER_SIMILARITY to every word of the sentence
# and the one before). The threshold was chosen on the tune article (Computational_complexity_theory): 0.4, 0.5,
# 0.6, 0.7 gave abstention 0.303, 0.371, 0.407, 0.425 at false abstention 0.051, 0.056, 0.056, 0.061 (before:
# 0.276 / 0.046), with MIN_EVIDENCE still 0.70; the held-out article (Normans) went 0.268 / 0.062 -> 0.295 / 0.073.
_QUALIFIER_DEPS = frozenset({"amod", "compound"})
# words that count, order or point rather than qualify ("how many", "other", "first", "their respective")
_NOT_QUALIFIERS = frozenset(content_words(
    "many much more most less least other another same different such own certain several various main first "
    "second last next respective particular specific given current former original whole entire actual real "
    "overall typical usual common general"))
QUALIFIER_SIMILARITY = 0.6


def qualifiers(analysis: Analysis, names: Sequence[str] = ()) -> tuple[tuple[str, str], ...]:
    """The (qualifier, noun) pairs of a question's parse: an adjective or noun that modifies a noun ("limited
    time", "sociology studies"); not a name of the question's (those are checked as names) nor a word that
    only counts or orders ("how many", "other", "first")."""
    words = analysis.words
    named = {w for n in names for w in _stems(n)}
    out = []
    for w in words:
        if w.dep not in _QUALIFIER_DEPS or w.pos not in ("ADJ", "NOUN") or not 0 <= w.head < len(words):
            continue
        head = words[w.head]
        stems = _stems(w.text)
        if head.pos != "NOUN" or not stems or not _stems(head.text) or stems & named \
                or stems & _NOT_QUALIFIERS or not w.text.isalpha():
            continue
        out.append((w.text, head.text))
    return tuple(dict.fromkeys(out))


def counts_of(analysis: Analysis, small: bool = False) -> tuple[tuple[str, str], ...]:
    """The (number, noun) pairs of a parse: a number that counts a noun ("two finite graphs", "3 layers");
    ``small``: only numbers below 100 (a year is no count, and ``missing_terms`` already needs a number >= 10
    that the question writes in digits)."""
    words = analysis.words
    return tuple(dict.fromkeys((w.text, words[w.head].text) for w in words
                               if w.dep == "nummod" and w.pos == "NUM" and 0 <= w.head < len(words)
                               and words[w.head].pos == "NOUN" and (st := _stems(w.text))
                               and (not small or all(x.isdigit() and int(x) < 100 for x in st))))


def other_count(a: Asked, sentence: Analysis, context: str = "") -> Rival | None:
    """The sentence counts a noun the question counts with another number ("two finite graphs" asked about
    "three finite graphs"), and says the question's number nowhere, nor in ``context``. On the tune article 3
    answered unanswerable questions and no answerable one were like that; none on the held-out article."""
    if not a.counts:
        return None
    window = _stems(f"{context} {sentence.text}")
    for mine, noun in a.counts:
        if _stems(mine) <= window or not _stems(noun) <= window:
            continue
        theirs = [n for n, x in counts_of(sentence) if _stems(x) == _stems(noun) and _stems(n) != _stems(mine)]
        if theirs:
            return Rival(mine, noun, theirs[0])
    return None


class Rival(NamedTuple):
    """What a sentence says instead of the question's word: ``theirs`` ``noun``, not ``mine`` ``noun`` (another
    qualifier or another count of the noun the question qualifies or counts, or the opposite of the question's
    word; then ``noun`` is empty)."""

    mine: str
    noun: str
    theirs: str

    def __str__(self) -> str:
        if not self.noun:
            return f'says "{self.theirs}", not "{self.mine}"'
        return f"says {self.theirs} {self.noun}, not {self.mine} {self.noun}"

    def held_by(self, text: str) -> bool:
        """``text`` holds the question's qualifier."""
        return _stems(self.mine) <= _stems(text)


def rival_qualifier(a: Asked, sentence: Analysis, context: str = "", similar: Similar | None = None) -> Rival | None:
    """The sentence names a noun the question qualifies ("*limited* time") with a qualifier of its own that the
    question does not have ("*extensive* time"), and no word of it or of ``context`` is close to the question's
    qualifier (cosine below QUALIFIER_SIMILARITY); None otherwise."""
    if similar is None or not a.qualified:
        return None
    window = _stems(f"{context} {sentence.text}")
    qstems = _stems(a.question)
    for mine, noun in a.qualified:
        nstems = _stems(noun)
        if _stems(mine) <= window or not nstems <= _stems(sentence.text):
            continue
        words = sentence.words
        theirs = [x.text for x in words if x.dep in _QUALIFIER_DEPS and 0 <= x.head < len(words)
                  and _stems(words[x.head].text) == nstems and _stems(x.text) and not _stems(x.text) <= qstems]
        if theirs and similar(mine, sorted(window)) < QUALIFIER_SIMILARITY:
            return Rival(mine, noun, theirs[0])
    return None


# Opposites SQuAD 2.0's twins swap in ("the *least* used type of reduction" over "the *most* commonly used
# reduction"): a sentence that says the opposite of the question's word and not the word itself answers
# nothing. On the tune article 8 answered unanswerable questions and no answerable one were like that; on the
# held-out article 1 and 0; no question of the docs, near-miss or HotpotQA suites.
_OPPOSITES = dict(
    pair
    for a, b in (p.split(":") for p in (
        "least:most fewest:most less:more fewer:more lowest:highest lower:higher smallest:largest smaller:larger "
        "earliest:latest first:last best:worst better:worse easier:harder easiest:hardest minimum:maximum "
        "before:after oldest:newest older:newer shortest:longest shorter:longer weaker:stronger inner:outer "
        "increase:decrease increased:decreased gain:loss won:lost north:south east:west northern:southern "
        "eastern:western").split())
    for pair in ((a, b), (b, a))
)


def opposite(a: Asked, sentence: str, context: str = "") -> Rival | None:
    """The question's word whose opposite the sentence says, without the word itself in it or in ``context``."""
    asked_words = set(folded_words(a.question))
    said = set(folded_words(sentence))
    around = said | set(folded_words(context))
    for w in sorted(asked_words):
        other = _OPPOSITES.get(w)
        if other and other not in asked_words and other in said and w not in around:
            return Rival(w, "", other)
    return None


def contrast(a: Asked, sentence: Analysis, context: str = "", similar: Similar | None = None) -> Rival | None:
    """What the sentence says instead of what the question asks about: the opposite of its word
    (``opposite``), another count of its noun (``other_count``), or another qualifier of its noun
    (``rival_qualifier``); None when none of these."""
    return opposite(a, sentence.text, context) or other_count(a, sentence, context) \
        or rival_qualifier(a, sentence, context, similar)


def _word_before(analysis: Analysis, start: int) -> str:
    before = [w for w in analysis.words if w.end <= start]
    return before[-1].text.lower() if before else ""


def evidence_gap(a: Asked, sentence: Analysis, context: str = "", similar: Similar | None = None,
                 on_topic: bool = False, passages: Sequence[str] = ()) -> str | None:
    """Why ``sentence`` (with ``context``, the sentence before it) does not answer the question, as a phrase
    ("does not mention 2019", "names no date"); None when it holds what the question is about. ``on_topic``: the
    sentence must also share a word with the question besides its names (asked of a sentence below the best one,
    so the check does not hop to a sentence about something else that happens to name the same company).
    ``passages``: the other retrieved passages, for a question that needs two of them (``bridged``)."""
    gone = missing_terms(a, f"{context} {sentence.text}", sentence, similar)
    window = _stems(f"{context} {sentence.text}")
    if gone and bridged(a, gone, f"{context} {sentence.text}", passages):
        gone = []
    if gone and a.multi_part:  # a question that chains two facts: the other passages may hold the first one
        elsewhere = " ".join(passages)
        gone = missing_terms(replace(a, counted=None), f"{context} {sentence.text} {elsewhere}")
    if on_topic and not gone and a.attributes and not a.counted and not any(_stems(w) <= window for w in a.attributes):
        gone = [a.attributes[-1]]
    if gone:
        return "does not mention " + _join(gone)
    if a.negated and not _NOT_S.search(f"{context} {sentence.text}"):
        return "says nothing that is not so, which the question asks about"
    if (rival := contrast(a, sentence, context, similar)) is not None:
        return str(rival)
    if a.stated:
        values = typed_values(a, sentence)
        alternatives = _ALTERNATIVES.search(a.question) if a.compares else None
        if alternatives and not values:  # "Who is older, X or Y?": the answer is one of the question's own
            offered = _stems(alternatives.group(0))  # names, which typed_values leaves out
            values = [e for e in sentence.entities_of(kind_labels(a)) if _stems(e.text) <= offered]
        if not values or counts_other_things(a, sentence, values, similar):
            noun = KIND_NOUN[a.kind]
            if a.kind == "num" and a.counted:
                noun = f"number of {a.counted}"
            return f"names no {noun}"
    return None


def nouns_counted_by(analysis: Analysis, value: Span) -> list[str]:
    """The nouns a number counts: those of the noun phrase right after it, at most three words ("32 hexadecimal
    characters" counts characters); none for a number that counts nothing ("is 60", "at most two")."""
    nouns = []
    for w in [w for w in analysis.words if w.start >= value.end][:3]:
        if w.pos not in _NOUN_PHRASE:
            break
        if w.pos in ("NOUN", "PROPN"):
            nouns.append(w.text)
    return nouns


def counts_asked_thing(a: Asked, nouns: Sequence[str], similar: Similar | None) -> bool:
    """One of ``nouns`` is the question's counted thing or means the same ("workers" for "employees")."""
    if not nouns or not a.counted:
        return False
    want = _stems(a.counted)
    if any(_stems(n) & want for n in nouns):
        return True
    return similar is not None and similar(a.counted, list(dict.fromkeys(nouns))) >= COUNTED_SIMILARITY


def counts_other_things(a: Asked, analysis: Analysis, values: Sequence[Span], similar: Similar | None) -> bool:
    """A how-many question's counted thing is not what the sentence's numbers count: every number in it counts
    nouns and none of them is the counted thing ("two ingests of a collection" holds no number of collections).
    A number that counts no noun may be the answer, so it keeps the sentence."""
    if a.kind != "num" or not a.counted or similar is None:
        return False
    nouns: list[str] = []
    for v in values:
        counted = nouns_counted_by(analysis, v)
        if not counted:
            return False
        nouns += counted
    return not counts_asked_thing(a, nouns, similar)


def counting_value(a: Asked, analysis: Analysis, similar: Similar | None) -> Span | None:
    """The number of ``analysis`` that counts the question's counted thing ("6" of "with 6 layers ... 384
    dimensions" for "how many layers"); None when no number, or more than one, does."""
    if a.kind != "num" or not a.counted:
        return None
    hits = [v for v in typed_values(a, analysis) if counts_asked_thing(a, nouns_counted_by(analysis, v), similar)]
    return hits[0] if len(hits) == 1 else None


_NOUN_PHRASE = frozenset({"NOUN", "PROPN", "ADJ", "NUM", "ADV"})


_CAPITALISED = re.compile(r"(?<![\w'])[A-Z][\w'-]*[a-z0-9][\w'-]*")


def _proper_stems(text: str) -> set[str]:
    return {w for m in _CAPITALISED.findall(text) for w in _stems(m) if len(w) >= 3}


def bridged(a: Asked, gone: Sequence[str], window: str, passages: Sequence[str]) -> bool:
    """A question that needs two passages ("Who directed the film that was shot in Leland, North Carolina in
    1986?"): what the sentence lacks is all in another passage, and that passage and the sentence share a name
    the question does not say and few passages have (the bridge: the film's title). Then the sentence answers
    the question through that passage."""
    if not passages:
        return False
    qstems = _stems(a.question)
    mine = _proper_stems(window) - qstems
    counts = [_proper_stems(p) for p in passages]
    for text, names in zip(passages, counts, strict=True):
        stems = _stems(text)
        digits = {n.replace(",", "") for n in _QNUMBER.findall(text)}
        if not all(_named(g, stems) or g in digits for g in gone):
            continue
        shared = {w for w in mine & names if sum(w in c for c in counts) <= 2}
        if shared:
            return True
    return False


def _join(items: Sequence[str]) -> str:
    quoted = [f'"{i}"' for i in items]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


# -- is the short answer a whole one? ----------------------------------------------------------------------------
