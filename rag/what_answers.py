"""Short answers to what/which questions: the noun phrase of the quoted sentence that fills the question's gap.

A what/which question has no type to look for (no name, date or number), so its short answer is chosen among the
sentence's noun phrases and entities (spaCy's analysis, ``rag.nlp``), and a phrase joined to the next by "of"
("the number of gates"), by how well it sits where the question's gap is:

- near the question's words in the sentence, with many of them around it;
- on the side of them where the gap is: "Turing machines are used to define *what*?" wants the phrase after
  "define"; "*What* is the basis for separation results?" wants the one before "separation results";
- holding the noun the question asks for ("what thesis ..." -> "Cobham-Edmonds thesis"), or named by "called",
  "known as", "referred to as" when the question asks a name or a term;
- a phrase of its own: not the question's words, not only modifiers ("most important"), not a pronoun, short.

The weights were chosen on the SQuAD 2.0 small tune article (Computational_complexity_theory) and reported on
the other (Normans) and on the docs suite; see the README's evaluation section.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.nlp import Analysis, Word, bare
from rag.short_answers import _QUALIFIER, _tok_range
from rag.text import content_words

MAX_WORDS = 8  # a longer phrase is penalised per word beyond SHORT_WORDS, and never offered beyond this
SHORT_WORDS = 6
MAX_DISTANCE = 10  # in words: farther from every question word counts as this far


@dataclass(frozen=True)
class Weights:
    distance: float = 1.0  # per word between the phrase and the nearest question word
    density: float = 0.5  # per distinct question word within WINDOW words of the phrase
    side: float = 0.3  # per question word on the side of the phrase where the question's gap is (minus: other side)
    noun: float = 3.0  # the phrase holds the noun the question asks for, and more
    naming: float = 3.0  # "called X", "known as X" when the question asks a name or term
    long: float = 0.5  # per word beyond SHORT_WORDS
    modifier: float = 3.0  # only adjectives, adverbs, verbs or numbers
    number: float = 3.0  # a bare number, unless the question asks a value ("which version") or what X is
    inside: float = 1.5  # per question word inside the phrase (the asked noun excepted)
    attach: float = 3.0  # the phrase depends on a question word of the sentence ("define complexity classes")
    copula: float = 4.0  # "X is Y" where one side holds more of the question's words: a phrase of the other side


WEIGHTS = Weights()
WINDOW = 5

_WH = re.compile(r"\b(?:what|which)\b", re.I)
_ASKED_NOUN = re.compile(
    r"\b(?:what|which)\s+(?:(?:main|primary|other|specific|general|common|two|three|four)\s+)*"
    r"(?:(?:types?|kinds?|sorts?|forms?|class(?:es)?|categor(?:y|ies))\s+of\s+)?(?:an?\s+|the\s+)?"
    r"(?P<noun>[^\W\d_][\w-]*)",
    re.I,
)
# "What is the capital of X?": the answer may stand on either side of "is" ("the capital of X is Y", "Y is the
# capital of X"), so the side of the gap tells nothing
_COPULAR = re.compile(r"^\W*(?:what|which)\s+(?:is|are|was|were)\b", re.I)
_NOT_A_NOUN = frozenset(
    "is are was were do does did can could would will has have had should might must may been be".split())
_ASKS_NAME = re.compile(r"\b(?:called|known as|referred to as|termed|named|term|name|nickname)\b", re.I)
_NAMED_BEFORE = re.compile(r"\b(?:called|known as|referred to as|termed|named|dubbed)\s*(?:an?|the)?\s*$", re.I)
_LEADING = frozenset("the a an its their his her this these that those our your my".split())
_TRAILING = frozenset("the a an of in on at and or to for by with its their his her".split())
_MODIFIER_POS = frozenset({"ADJ", "ADV", "VERB", "AUX", "NUM"})
_NO_ANSWER_LABELS = frozenset({"CARDINAL", "ORDINAL"})
_NUMBER = re.compile(r"^v?\d[\d.,:]*$")
_QUALIFIED = re.compile(_QUALIFIER + r"$", re.I)
# nouns whose answer is a number or a value ("which version", "what port")
_VALUE_NOUNS = frozenset(content_words(
    "version versions port address threshold value number size limit rate timeout score weight constant lambda "
    "default minimum maximum length percentage ratio level release year"))


_BE = frozenset("is are was were".split())
_COPULA_DEPS = frozenset({"ROOT", "conj", "ccomp", "advcl", "relcl"})


def _descendants(heads: Sequence[int], root: int) -> set[int]:
    """``root`` and the indices of every word that depends on it, directly or not (``heads[i]``: the index of the
    word ``i`` depends on)."""
    inside = {root}
    grew = True
    while grew:
        grew = False
        for i, h in enumerate(heads):
            if i not in inside and h in inside and h != i:
                inside.add(i)
                grew = True
    return inside


def _subtree(words: Sequence[Word], root: int) -> tuple[int, int]:
    """The character span of ``words[root]`` and everything that depends on it."""
    inside = _descendants([w.head for w in words], root)
    return min(words[i].start for i in inside), max(words[i].end for i in inside)


def answer_sides(analysis: Analysis, qstems: frozenset[str]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Character spans of the side of each "X is Y" clause that holds fewer of the question's words: "Closely
    related fields in theoretical computer science are analysis of algorithms and computability theory" asked
    "What two fields of theoretical computer science ...?" has its answer in "analysis of ...", and "A
    probabilistic Turing machine is a deterministic Turing machine with an extra supply of random bits" asked
    "What ... identifies a deterministic Turing machine that has additional random bits?" in "A probabilistic
    Turing machine". Each clause gives (the answer's side, the question's side); a clause whose two sides hold as
    many of the question's words tells nothing."""
    words = analysis.words
    out = []
    for i, w in enumerate(words):
        if w.text.lower() not in _BE or w.dep not in _COPULA_DEPS or w.head < 0:
            continue
        subj = next((j for j, x in enumerate(words) if x.head == i and j != i and x.dep in ("nsubj", "expl")), None)
        comp = next((j for j, x in enumerate(words) if x.head == i and j != i and x.dep == "attr"), None)
        if subj is None or comp is None:
            continue
        sides = [_subtree(words, subj), _subtree(words, comp)]
        held = [len(_stems(analysis.text[a:b]) & qstems) for a, b in sides]
        if held[0] != held[1]:
            out.append((sides[0], sides[1]) if held[0] < held[1] else (sides[1], sides[0]))
    return out


# a listed sibling of a question word ("every metric, the settings used, library versions") is not what the
# question asks of it
_NOT_ATTACHED = frozenset({"conj", "punct", "cc"})


def _attached(analysis: Analysis, keep: Sequence[int], qset: set[int]) -> list[bool]:
    """For each word ``analysis.words[keep[i]]``: does it depend on a question word of the sentence, directly or
    through a preposition ("used to define complexity classes", "solved in linear time")?"""
    words = analysis.words
    out = []
    for j in keep:
        h = words[j].head
        ok = words[j].dep not in _NOT_ATTACHED and 0 <= h < len(words) and h != j and (h in qset or (
            words[h].dep in ("prep", "agent") and words[h].head in qset and words[h].head != h))
        out.append(ok)
    return out


def _punct(w: Word) -> bool:
    """Punctuation, a backtick (code in backticks stays whole) excepted."""
    return not w.text[:1].isalnum() and w.text != "`"


def _stems(text: str) -> frozenset[str]:
    return frozenset(content_words(text))


def _gap_sides(question: str) -> dict[str, int]:
    """Each content word of the question -> -1 when it comes before the what/which, +1 after."""
    m = _WH.search(question)
    wh = m.start() if m else 0
    sides: dict[str, int] = {}
    for tok in re.finditer(r"\S+", question):
        for s in _stems(tok.group(0)):
            sides.setdefault(s, -1 if tok.start() < wh else 1)
    return sides


def asked_noun(question: str) -> frozenset[str]:
    """The stems of the noun a what/which question asks for ("thesis" of "What thesis states ...?", "machine" of
    "what type of Turing machine"); empty when it asks none ("What is ...?")."""
    m = _ASKED_NOUN.search(question)
    if not m or m.group("noun").lower() in _NOT_A_NOUN:
        return frozenset()
    return _stems(m.group("noun"))


@dataclass(frozen=True)
class _Question:
    """What the scoring reads of the question, worked out once per sentence rather than once per phrase."""

    stems: frozenset[str]
    noun: frozenset[str]  # asked_noun
    sides: dict[str, int]  # _gap_sides; empty for "what is ...?" (copular)
    copular: bool
    asks_name: bool

    @classmethod
    def of(cls, question: str) -> _Question:
        copular = bool(_COPULAR.match(question))
        return cls(_stems(question), asked_noun(question), {} if copular else _gap_sides(question), copular,
                   bool(_ASKS_NAME.search(question)))


def _neighbour(phrase: Sequence[Word], qstems: frozenset[str], noun: frozenset[str]) -> bool:
    """The question's words (other than the noun it asks for) and one common noun: "the chunk size" asked "what
    is the chunk overlap?" names the asked thing's neighbour, not an answer ("the qpdf tool" asked "which tool"
    is one)."""
    theirs = [w for w in phrase if (s := _stems(w.text)) and s <= qstems]
    own = [w for w in phrase if (s := _stems(w.text)) and not s <= qstems]
    return len(own) == 1 and any(not _stems(w.text) <= noun for w in theirs) and own[0].pos == "NOUN" \
        and own[0].text.islower()


def _candidates(analysis: Analysis, words: Sequence[Word], qstems: frozenset[str],
                noun: frozenset[str]) -> list[tuple[int, int]]:
    """Word ranges of the sentence's noun phrases and entities, and of two noun phrases joined by "of", without
    leading determiners and edge punctuation; only those holding a word that is not the question's."""
    chunks = sorted({_tok_range(words, p.start, p.end) for p in analysis.phrases})
    ranges = set(chunks)
    ranges |= {_tok_range(words, e.start, e.end) for e in analysis.entities if e.label not in _NO_ANSWER_LABELS}
    ranges |= {(i, i + 1) for i, w in enumerate(words) if _NUMBER.match(w.text)}  # "3.11", "127.0.0.1", "60"
    for (a1, b1), (a2, b2) in zip(chunks, chunks[1:], strict=False):
        if a2 == b1 + 1 and words[b1].text.lower() == "of":
            ranges.add((a1, b2))
    out: set[tuple[int, int]] = set()
    for a, b in ranges:
        while a < b and (words[a].text.lower() in _LEADING or _punct(words[a])):
            a += 1
        while a < b and (_punct(words[b - 1]) or words[b - 1].pos == "PART"):
            b -= 1
        if a >= b or b - a > MAX_WORDS or all(w.pos == "PRON" for w in words[a:b]):
            continue
        stems = _stems(" ".join(w.text for w in words[a:b]))
        if stems and not stems <= qstems and not _neighbour(words[a:b], qstems, noun):
            out.add((a, b))
    return sorted(out)


def _score(q: _Question, words: Sequence[Word], word_stems: Sequence[frozenset[str]], a: int, b: int,
           qpos: Sequence[int], w: Weights,
           copulas: Sequence[tuple[tuple[int, int], tuple[int, int]]] = (),
           attached: Sequence[bool] = (), heads: Sequence[int] = ()) -> tuple[float, int]:
    """(score, distance in words to the nearest question word) of the phrase ``words[a:b]``."""
    qstems = q.stems
    dist = max(0, min((a - p - 1) if p < a else (p - b) if p >= b else 0 for p in qpos))
    score = -w.distance * min(dist, MAX_DISTANCE)
    near = {s for p in qpos if a - WINDOW <= p < a or b <= p < b + WINDOW for s in word_stems[p] & qstems}
    score += w.density * len(near)
    sides = q.sides
    for p in qpos:
        for s in word_stems[p] & qstems:
            side = sides.get(s)
            if side is not None:
                score += w.side if (side < 0 and p < a) or (side > 0 and p >= b) else -w.side
    stems = _stems(" ".join(x.text for x in words[a:b]))
    noun = q.noun
    if noun and noun & stems and stems - qstems:
        score += w.noun
    if q.asks_name:
        before = " ".join(x.text for x in words[max(0, a - 4) : a])
        if _NAMED_BEFORE.search(before):
            score += w.naming
    if b - a > SHORT_WORDS:
        score -= w.long * (b - a - SHORT_WORDS)
    if b - a == 1 and _NUMBER.match(words[a].text):
        if noun & _VALUE_NOUNS:
            score += w.noun  # "which version": the number is the thing asked for
        elif not q.copular:
            score -= w.number  # what/which questions rarely ask a bare number
    elif all(x.pos in _MODIFIER_POS for x in words[a:b] if x.text[:1].isalnum()):
        score -= w.modifier
    score -= w.inside * len((stems & qstems) - noun)
    start, end = words[a].start, words[b - 1].end
    for (x, y), (u, v) in copulas:
        if x <= start and end <= y:
            score += w.copula
        elif u <= start and end <= v:
            score -= w.copula
    if attached and any(attached[i] and not (a <= heads[i] < b) for i in range(a, b)):
        score += w.attach
    return score, dist


def _drop_tail(words: Sequence[Word], a: int, b: int) -> int:
    while b - a > 1 and (words[b - 1].text.lower() in _TRAILING or _punct(words[b - 1])):
        b -= 1
    return b


def _trim(words: Sequence[Word], a: int, b: int, qstems: frozenset[str]) -> tuple[int, int]:
    """Leading question words are dropped when "of"/"in" follows them ("the conquest of Jerusalem" asked "what
    conquest" -> "Jerusalem"); trailing articles, prepositions and punctuation go."""
    first = a
    while b - a > 1 and (s := _stems(words[a].text)) and s <= qstems:
        a += 1
    if a > first:
        if b - a > 1 and words[a].text.lower() in ("of", "in"):
            a += 1
        else:
            a = first
    b = _drop_tail(words, a, b)
    # trailing question words go when a noun stays: "the MIT license" asked "which license" -> "MIT"
    last = b
    while last - a > 1 and (s := _stems(words[last - 1].text)) and s <= qstems:
        last -= 1
    if last < b and any(w.pos in ("NOUN", "PROPN", "NUM") or w.text == "`" for w in words[a:last]):
        b = _drop_tail(words, a, last)
    if b - a > 2 and words[a].text == "`" and words[b - 1].text == "`":  # code in backticks: the code
        a, b = a + 1, b - 1
    return a, b


# words that modify a noun after them: a phrase ending in one is a piece of a bigger one ("Boolean" of "the
# Boolean satisfiability problem", "Cook" of "Cook reductions")
_MODIFIES = frozenset({"compound", "amod", "nmod", "nummod"})
_STOPS = frozenset(".,;:?!\"“”`—)")  # a joined token starting with one of these ends the phrase
MAX_HEAD_GAP = 3  # words between a modifier and the noun it modifies


def _whole(words: Sequence[Word], a: int, b: int, heads: Sequence[int], qstems: frozenset[str]) -> tuple[int, int]:
    """``words[a:b]`` grown to the whole phrase it is cut from: a token written joined to it ("co" of "co-NP",
    "f(n" of "f(n)"), a bracket it opens, and the noun its last word modifies ("Boolean" -> "Boolean
    satisfiability problem"), unless the words that adds are all the question's ("the qpdf tool" asked "which
    tool" stays "qpdf"). A short answer is a whole constituent, never a word cut out of a phrase."""
    grew = True
    while grew:
        grew = False
        # joined tokens: no space between them, and no punctuation that ends a phrase
        while b < len(words) and words[b].start == words[b - 1].end and words[b].text[:1] not in _STOPS \
                and words[b].text.lower() not in ("'s", "’s"):
            b, grew = b + 1, True
        while a > 0 and words[a].start == words[a - 1].end and (words[a - 1].text[:1].isalnum()
                                                                or words[a - 1].text in ("-", "–")):
            a, grew = a - 1, True
        text = "".join(w.text for w in words[a:b])
        if text.count("(") > text.count(")"):
            close = next((j for j in range(b, min(len(words), b + 4)) if words[j].text == ")"), None)
            if close is not None:
                b, grew = close + 1, True
        h = heads[b - 1] if b - 1 < len(heads) else -1
        if words[b - 1].dep in _MODIFIES and b - 1 < h <= b + MAX_HEAD_GAP and words[h].pos in ("NOUN", "PROPN") \
                and all(words[j].dep in _MODIFIES or words[j].text in ("-", "–") for j in range(b, h)) \
                and not _stems(" ".join(w.text for w in words[b : h + 1])) <= qstems:
            b, grew = h + 1, True
    return a, b


# a question that asks for two or more things ("What are two complexity classes between L and P?")
_SEVERAL = re.compile(r"\b(?:two|three|four|five|several)\b", re.I)  # not "both": "Are X and Y both ...?"
MAX_LISTED = 12  # words of a phrase with its listed siblings


def _listed(words: Sequence[Word], a: int, b: int, heads: Sequence[int]) -> int:
    """The end of ``words[a:b]`` with the siblings listed after it ("NL" -> "NL and NC", "Cook" of "Cook
    reductions, Karp reductions and Levin reductions" -> all three): from the phrase's head (or the noun its last
    word modifies) along its chain of ``conj`` dependents, to the end of the last one's subtree."""
    head = next((i for i in range(b - 1, a - 1, -1) if not a <= heads[i] < b), b - 1)
    if words[head].dep in _MODIFIES and head < heads[head] <= head + MAX_HEAD_GAP:
        head = heads[head]  # "Cook" of "Cook reductions": the list is one of reductions
    last = head
    while (nxt := next((i for i in range(last + 1, len(words)) if heads[i] == last and words[i].dep == "conj"),
                       None)) is not None:
        last = nxt
    if last == head:
        return b
    end = max(max(_descendants(heads, last)) + 1, b)  # never shorter than the phrase
    return end if end - a <= MAX_LISTED else b


def gap_phrase(question: str, analysis: Analysis, weights: Weights = WEIGHTS) -> tuple[int, int, int] | None:
    """``(start, end, distance)``: the character span in ``analysis.text`` of the phrase that best fills the gap of
    the what/which ``question``, and its distance in words to the nearest question word; None when the sentence
    holds none of the question's words or no phrase of its own."""
    keep = [j for j, w in enumerate(analysis.words) if w.text.strip()]
    words = [analysis.words[j] for j in keep]
    if not words:
        return None
    q = _Question.of(question)
    qstems = q.stems
    word_stems = [_stems(w.text) for w in words]
    qpos = [i for i, s in enumerate(word_stems) if s & qstems]
    if not qpos:
        return None
    best: tuple[tuple[float, int], int, int, int] | None = None
    copulas = answer_sides(analysis, qstems) if weights.copula else []
    position = {j: i for i, j in enumerate(keep)}
    attached = _attached(analysis, keep, {keep[i] for i in qpos}) if weights.attach else []
    heads = [position.get(w.head, -1) for w in words]
    for a, b in _candidates(analysis, words, qstems, q.noun):
        score, dist = _score(q, words, word_stems, a, b, qpos, weights, copulas, attached, heads)
        key = (score, -a)
        if best is None or key > best[0]:
            best = (key, a, b, dist)
    if best is None:
        return None
    _, a, b, dist = best
    a, b = _trim(words, a, b, qstems)
    a, b = _whole(words, a, b, heads, qstems)
    if _SEVERAL.search(question):
        b = _drop_tail(words, a, _listed(words, a, b, heads))
    start, end = bare(analysis.text, words[a].start, words[b - 1].end)  # "the server's" -> "server"
    if b - a == 1 and _NUMBER.match(words[a].text):  # a number keeps its qualifier: "at least 0", not "0"
        q = _QUALIFIED.search(analysis.text, 0, start)
        start = q.start() if q else start
    return start, end, dist
