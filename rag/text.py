"""Text analysis for the lexical parts: the tokens, stop words and stems of BM25 (rag/bm25.py), the support check
(rag/support.py) and the extractive answerer (rag/extractive.py).

What they share is defined once: ``plain_words``/``folded_words`` (letter/digit runs: title lines, question
shapes, title links) and ``IRREGULAR`` (irregular inflections folded to their base form). Beyond that there are
two analyzers, and a span tokenizer on top of the second. They stay separate on purpose: each was tuned, and its
figures measured (BM25 retrieval, the support thresholds, the answerer's weights), with its own rules, so merging
them would change BM25 scores, support decisions and answers. ``tests/unit/test_text.py`` pins all of them to
what they gave before they were gathered here.

- ``index_tokens`` (BM25, chunks and queries alike): NFKC and casefold, ``2,000`` -> ``2000``, ``don't`` ->
  ``dont``, a dot between digits kept (``3.14``, ``v1.2.3`` one token); ``INDEX_STOPWORDS`` (Lucene's English list
  plus question words); ``IRREGULAR``, then Harman's S-stemmer (plurals only).
- ``content_words`` (the support check, and the answerer's word share and name checks), over ``claim_tokens``:
  ``[n]`` markers dropped, quotes and dashes folded, ``lower()`` (no NFKC), numbers keep their dots and commas are
  dropped, words are letter runs only; ``CLAIM_STOPWORDS`` (a longer list, without "many"/"much"); number words as
  digits; ``IRREGULAR``, then ``claim_stem`` (``ing``/``ed``/``es``/``s`` stripped).
- ``span_tokens`` (the answerer's short-answer spans): its own token pattern, with offsets and punctuation, and
  a word with an apostrophe kept whole; each token's content-word form comes from the claim analyzer.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from rag.citations import strip_markers

# -- shared ------------------------------------------------------------------------------------------------------

# Irregular inflections folded to their base form, so "How many troops did China send?" matches "has sent".
IRREGULAR: dict[str, str] = dict(
    pair.split(":")
    for pair in (
        "sent:send took:take taken:take went:go gone:go made:make said:say held:hold built:build began:begin "
        "begun:begin won:win led:lead found:find paid:pay sold:sell bought:buy brought:bring gave:give given:give "
        "wrote:write written:write ran:run became:become told:tell left:leave met:meet kept:keep spent:spend "
        "grew:grow grown:grow fell:fall known:know knew:know shown:show saw:see seen:see chose:choose "
        "chosen:choose drew:draw drawn:draw flew:fly thought:think taught:teach caught:catch fought:fight "
        "stood:stand lost:lose meant:mean rose:rise risen:rise struck:strike spoke:speak spoken:speak "
        "children:child men:man women:woman people:person died:die born:bear"
    ).split()
)

WORD = re.compile(r"[^\W_]+")


def plain_words(text: str) -> list[str]:
    """The letter/digit runs of ``text`` as written (no normalisation): how long a title line or a question is."""
    return WORD.findall(text)


def folded_words(text: str) -> list[str]:
    """The letter/digit runs of ``text`` after NFKC, casefolded: how BM25 matches document titles in text."""
    return [w.casefold() for w in WORD.findall(unicodedata.normalize("NFKC", text))]


# -- BM25: index_tokens -------------------------------------------------------------------------------------------

# Lucene's English list plus the question and auxiliary words that fill questions but carry no topic.
INDEX_STOPWORDS = frozenset(
    """a an and are as at be but by for if in into is it no not of on or such that the their then there these
    they this to was will with what which who whom whose when where why how do does did doing am been being
    were have has had having i me my we our you your he him his she her its them those than so from many much
    """.split()
)

_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_POSSESSIVE = re.compile(r"(?<=\w)['\u2019]s\b")
_APOSTROPHE = re.compile(r"(?<=\w)['\u2019](?=\w)")
_INDEX_TOKEN = re.compile(r"[^\W_]+(?:(?<=\d)\.(?=\d)[^\W_]+)*")


def s_stem(word: str) -> str:
    """Harman's S-stemmer: plural endings only, so it never merges unrelated words (BM25's stemmer)."""
    if len(word) <= 3 or not word.isalpha():
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


@lru_cache(maxsize=1 << 18)
def index_term(word: str) -> str:
    """The BM25 term of one raw token, "" for a stopword (cached: a corpus repeats its words endlessly)."""
    return "" if word in INDEX_STOPWORDS else IRREGULAR.get(word) or s_stem(word)


def index_raw_tokens(text: str) -> list[str]:
    """BM25's raw tokens of ``text``, before stop words and stemming (``index_term`` maps each to its term)."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if "," in text:
        text = _THOUSANDS.sub("", text)
    if "'" in text or "\u2019" in text:
        text = _APOSTROPHE.sub("", _POSSESSIVE.sub("", text))
    return _INDEX_TOKEN.findall(text)


def index_tokens(text: str) -> list[str]:
    """BM25 terms of ``text``, the same for chunks and queries: NFKC, casefold; possessive "'s" dropped and
    apostrophes inside words removed ("don't" -> "dont"); thousands separators between digits removed ("2,000" ->
    "2000"); tokens are runs of letters/digits, with a dot kept between digits ("3.14", "v1.2.3" stay whole, so a
    version or section number matches exactly); ``INDEX_STOPWORDS`` removed; ``IRREGULAR`` folded, then the
    S-stemmer on purely alphabetic words longer than 3 letters, so "documents" matches "document"."""
    return [t for t in map(index_term, index_raw_tokens(text)) if t]


# -- the support check and the answerer's word share: content_words -----------------------------------------------

# A longer list than BM25's: the support check compares every content word of a claim, so modal verbs and
# reporting words ("said", "also") must not count; "many"/"much" are kept (they are part of a claim).
CLAIM_STOPWORDS = frozenset(
    """a an the and or but if of at by for with about against between into through during before after above below
    to from up down in out on off over under again further then once here there when where why how all any both
    each few more most other some such no nor not only own same so than too very can will just should now is are
    was were be been being have has had having do does did doing i me my we our you your he him his she her it its
    they them their what which who whom whose this that these those am would could also as may might must shall
    s t said says one's""".split()
)
NUMBER_WORDS = {
    w: str(i)
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen".split()
    )
} | {w: str(10 * i) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split(), start=2)}
_FOLD = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "–": "-", "—": "-", "\u00a0": " "})
_CLAIM_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+|\d+")  # numbers keep their , and . ; words are letter runs


def claim_tokens(text: str) -> list[str]:
    """Lower-case word and number tokens of ``text`` with ``[n]`` markers dropped; ``2,000`` -> ``2000``. Unlike
    BM25's, a number keeps its dots and any comma group (``1,23`` -> ``123``) and a word is letters only
    (``v1`` -> ``v``, ``1``): the support check compares numbers as values and words as words."""
    t = strip_markers(text).translate(_FOLD).lower()
    return [tok.replace(",", "") if tok[0].isdigit() else tok for tok in _CLAIM_TOKEN.findall(t)]


def claim_stem(w: str) -> str:
    """Crude folding so "troops"/"troop", "participated"/"participating", "sent"/"send" meet; the same on both
    sides of a comparison. Stronger than BM25's plural-only stemmer: a claim paraphrases its evidence."""
    if w in IRREGULAR:
        return IRREGULAR[w]
    for suffix in ("ing", "ed", "es", "s"):
        if len(w) > len(suffix) + 3 and w.endswith(suffix) and not w.endswith("ss"):
            return w[: -len(suffix)]
    return w


def content_words(text: str) -> list[str]:
    """Tokens that carry content: ``CLAIM_STOPWORDS`` dropped, number words as digits, crude stemming."""
    return list(_content_words(text))


@lru_cache(maxsize=1 << 15)
def _content_words(text: str) -> tuple[str, ...]:
    # cached: an answer analyses each candidate sentence several times (as itself, as the next one's context, in
    # the evidence check), and the texts are short; ~8 ms of an answer's time before this cache
    out = []
    for tok in claim_tokens(text):
        tok = NUMBER_WORDS.get(tok, tok)
        if tok in CLAIM_STOPWORDS or tok == "'":
            continue
        out.append(tok if tok[0].isdigit() else claim_stem(tok.removesuffix("'s")))
    return tuple(out)


# -- the answerer's short spans: span_tokens ----------------------------------------------------------------------

# Unlike claim_tokens these keep offsets and punctuation (a span stops at a comma or a bracket) and keep a word with
# an apostrophe whole ("O'Neill's"), so a span can be cut back out of the sentence exactly.
_SPAN_TOKEN = re.compile(r"\d[\d,.]*\d|\d|[^\W_]+(?:['’][^\W_]+)*|[^\w\s]")


@dataclass(frozen=True)
class SpanToken:
    start: int
    end: int
    text: str
    stem: str  # content-word form ("" for stopwords and punctuation)


@lru_cache(maxsize=1 << 14)
def span_stem(token: str) -> str:
    """The content-word form of one span token (the claim analyzer's), "" for a stopword or punctuation."""
    cw = content_words(token)
    return cw[0] if cw else ""


def span_tokens(sentence: str) -> list[SpanToken]:
    """The tokens of ``sentence`` with their offsets and content-word forms, punctuation included."""
    return [SpanToken(m.start(), m.end(), m.group(0), span_stem(m.group(0))) for m in _SPAN_TOKEN.finditer(sentence)]
