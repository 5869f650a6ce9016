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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from rag.answer_check import (
    Asked,
    asked,
    contrast,
    counting_value,
    evidence_gap,
    kind_labels,
    missing_terms,
    question_names,
    unnamed,
)
from rag.followups import _is_elliptic, contextualize
from rag.nlp import Analyzer
from rag.short_answers import _best_span, question_type, short_answer_span, typed_answer_strength
from rag.text import claim_tokens, content_words
from rag.types import ABSTAIN_TEXT, CONFLICT_LEAD, Answer, Citation, Hit, Retrieval, Turn
from rag.what_answers import gap_phrase
from rag.whole_answers import bare_modifier, best_typed, wants_short_answer, whole_answer

if TYPE_CHECKING:
    from rag.interfaces import Embedder

__all__ = ["ExtractiveAnswerer", "NOTE_CONFLICT", "_is_elliptic", "contextualize", "conflicting", "question_names",
           "question_type", "short_answer_span", "unnamed"]

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
# A question word that only the sentence before has (the sentence opens with a pronoun) counts this much in the
# word share: "It must be at least 0 and smaller than the chunk size." after "... the default overlap is 24" is
# not about the default chunk size. Chosen on SQuAD's Computational_complexity_theory article (the tune split).
CONTEXT_WEIGHT = 0.5
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
NOTE_GAP = "not answered by the documents: the closest sentence {gap}"
# The evidence check (rag.answer_check) looks at the best sentences within EVIDENCE_MARGIN of the best score (at
# most EVIDENCE_SENTENCES of them): the first that holds what the question is about is quoted; when none does,
# the answerer abstains and says what was missing.
EVIDENCE_SENTENCES = 6
EVIDENCE_MARGIN = 0.4
# Calibrated abstention: the one score is the quoted (evidence) sentence's score above, W_SIM * cosine + W_LEX *
# word share + ..., and the answerer abstains below MIN_EVIDENCE. Chosen by ``python -m evals.tools.
# calibrate_abstention`` on the Computational_complexity_theory article of SQuAD 2.0 small (the tune split): the
# threshold that abstains most on its unanswerable questions while abstaining on at most 5% of its answerable
# ones; the Normans article is the held-out split (figures in the README).
MIN_EVIDENCE = 0.675
NOTE_WEAK = "not answered by the documents: the closest sentence that mentions what is asked scores {score:.2f}, " \
    "below the evidence threshold {threshold:.2f}"
TYPED_FALLBACK_KEY = 20.0  # rank key of a typed value found by the analysis when no pattern matched


# -- the answerer ------------------------------------------------------------------------------------------------


@dataclass
class _Sentence:
    hit_index: int  # position of the best-ranked hit holding the sentence
    hit: Hit
    start: int  # offsets in hit.chunk.text
    end: int
    text: str
    context: str = ""  # the sentence before, when this one opens with a pronoun ("It was completed in 1897.")
    previous: str = ""  # the sentence before it in its passage, whatever it is (the evidence check's context)
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


def _candidates(hits: Sequence[Hit]) -> list[_Sentence]:
    from rag.sentences import split_sentences
    from rag.titles import is_heading

    seen: dict[tuple[str, int, int], _Sentence] = {}
    for i, hit in enumerate(hits):
        c = hit.chunk
        prev = ""
        for a, b in split_sentences(c.text):
            key = (c.source, c.start + a, c.start + b)
            text = c.text[a:b]
            if is_heading(c.text, a, b, opens_document=c.start == 0):  # context for the next one, never a quote
                prev = text
                continue
            if key not in seen:  # hits are in rank order: the first holder is the best-ranked one
                seen[key] = _Sentence(i, hit, a, b, text, prev if _REFERS_BACK.match(text) else "", prev)
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
        check_evidence: bool = True,
        min_evidence: float = MIN_EVIDENCE,
        analyzer: Analyzer | None = None,
    ) -> None:
        if not -1.0 <= min_relevance <= 1.0:
            raise ValueError(f"min_relevance must be a cosine similarity between -1 and 1, got {min_relevance}")
        if max_sentences < 1:
            raise ValueError(f"max_sentences must be >= 1, got {max_sentences}")
        if max_embedded < 1:
            raise ValueError(f"max_embedded must be >= 1, got {max_embedded}")
        self.max_embedded = max_embedded
        self.check_evidence = check_evidence
        self.context_weight = CONTEXT_WEIGHT
        self.min_evidence = min_evidence
        self.evidence_sentences = EVIDENCE_SENTENCES
        self.evidence_margin = EVIDENCE_MARGIN
        self.analyzer = analyzer or Analyzer()
        if check_evidence:
            self.analyzer.preload()  # overlaps loading the embedder and retrieving the first question's hits
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
        self, query: str, hits: Sequence[Hit], follow_up: str | None = None, query_vector: np.ndarray | None = None
    ) -> tuple[list[_Sentence], float]:
        """The candidate sentences of ``hits`` scored against ``query``, best first, and the best passage's
        cosine similarity to the query (from ``dense_score``, or computed when a hit has none). ``follow_up`` is
        the elliptic question that ``query`` completes: its words are what the user asks about now.
        ``query_vector``: the query's embedding when retrieval has it (else it is embedded here)."""
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
            own = set(content_words(s.text))  # words only the sentence before has count CONTEXT_WEIGHT
            s.lex = sum(idf[w] * (1.0 if w in own else self.context_weight) for w in qwords if w in words)
            s.lex = s.lex / total if total else 0.0
            s.score = W_LEX * s.lex + W_RANK / (1 + s.hit_index)
            s.score += W_TYPED * typed_answer_strength(query, s.text, qtype)  # a number, a date: what is asked
            if asked_now and not asked_now & words:
                s.score -= FOLLOW_UP_MISS
        # Embedding sentences is most of an answer's time: only the best by the cheap part of the score are
        # embedded (the cosine can lift a sentence by at most W_SIM, the lexical part separates them more).
        if len(sents) > self.max_embedded:
            ranked = sorted(sents, key=lambda s: -s.score)
            sents = ranked[: self.max_embedded]
            # the best sentence holding every name and number of the question is shortlisted too: it is the
            # evidence the check of rag.answer_check looks for ("How many troops did China send in 2018?" ->
            # "... compared with 3,200 soldiers participating in 2018.")
            specific = asked(query, qtype)
            holder = next((x for x in ranked[self.max_embedded:]
                           if (specific.names or specific.numbers)
                           and not missing_terms(replace(specific, counted=None), f"{x.previous} {x.text}")), None)
            if holder is not None:
                sents.append(holder)
        # one embedding call: the query (unless retrieval passed its vector), the shortlisted sentences, and the
        # passages lacking a dense score
        no_dense = [h for h in ordered if h.dense_score is None]
        head = [] if query_vector is not None else [query]
        vecs = np.asarray(self.embedder.embed([*head, *(s.text for s in sents), *(h.chunk.text for h in no_dense)]))
        qv = np.asarray(query_vector, dtype=np.float32).reshape(-1) if query_vector is not None else vecs[0]
        vecs = vecs[len(head):]
        sims = vecs[: len(sents)] @ qv
        passage_sims = [float(h.dense_score) for h in ordered if h.dense_score is not None]
        passage_sims += [float(v @ qv) for v in vecs[len(sents) :]]
        for s, sim in zip(sents, sims, strict=True):
            s.sim = float(sim)
            s.score += W_SIM * s.sim
        return sorted(sents, key=lambda s: -s.score), max(passage_sims)

    def answer(self, question: str, hits: Retrieval | Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        """Answer ``question`` from ``hits``: a Retrieval answers its ``query`` (the standalone question the
        Asker retrieved with); plain hits answer the question joined to ``history`` when it is elliptic."""
        t0 = time.perf_counter()
        got = Retrieval.of(hits, lambda: contextualize(question, history))
        query, hits = got.query.strip(), got.hits
        standalone = query if query != question.strip() else None
        ranked, passage_sim = self.score(query, hits, question if standalone else None, got.vector)
        if not ranked or not self.relevant(passage_sim, max(s.sim for s in ranked), max(s.lex for s in ranked)):
            return self._abstain(question, hits, standalone, t0)
        if self.require_names and unnamed(query, hits):
            return self._abstain(question, hits, standalone, t0)
        # the type of the question as asked, unless it is elliptic ("and in 2018?" keeps "how many")
        qtype = question_type(question)
        qtype = question_type(query) if qtype == "other" else qtype
        # what must be in the evidence: the question's own names, numbers and counted thing; for an elliptic
        # follow-up ("and in 2018?") only its own new words, the previous question being context
        own = question if standalone else query
        want = asked(own, qtype, self.analyzer.analyze([own])[0] if self.check_evidence else None, kind_from=query)
        if self.check_evidence:
            first = ranked[0]
            ranked, gap = self._evidenced(want, ranked, hits)
            if gap is not None:
                return self._abstain(question, hits, standalone, t0, NOTE_GAP.format(gap=gap))
            # the evidence score: the evidence sentence's, or for a chained question the first fact's sentence's
            evidence = max(ranked[0].score, first.score) if want.multi_part else ranked[0].score
            if evidence < self.min_evidence:
                note = NOTE_WEAK.format(score=evidence, threshold=self.min_evidence)
                return self._abstain(question, hits, standalone, t0, note)
        chosen = self._chosen(query, ranked)
        short, chosen = self._short_answer(want, query, chosen)
        notes: tuple[str, ...] = ()
        conflict = conflicting(query, qtype, chosen[0], short, ranked) if short else None
        if conflict is not None:
            chosen = [chosen[0], conflict[0]]
        citations = tuple(_citation(i + 1, s) for i, s in enumerate(chosen))
        quotes = "\n\n".join(f'"{c.text}" [{c.n}]' for c in citations)
        text = f"{short} — {quotes}" if short else quotes
        if conflict is not None:  # each value with the quote it comes from, after a lead that says they disagree
            first, second = (f'{v} — "{c.text}" [{c.n}]' for v, c in zip((short, conflict[1]), citations, strict=True))
            text = f"{CONFLICT_LEAD} {first}\n\n{second}"
            short, notes = None, (NOTE_CONFLICT,)
        return Answer(question=question, answer=text, short_answer=short, abstained=False, citations=citations,
                      hits=hits, timings={"answer": (time.perf_counter() - t0) * 1000}, backend=self.name,
                      standalone_question=standalone, notes=notes)

    def _evidenced(self, want: Asked, ranked: list[_Sentence],
                   hits: Sequence[Hit]) -> tuple[list[_Sentence], str | None]:
        """``ranked`` with the best sentence that holds what the question is about moved first, or the gap of
        the best sentence when none of the close ones does (see rag.answer_check.evidence_gap)."""
        best = ranked[0]
        # a question that chains two facts finds its answer in a sentence that matches it less well than the
        # sentence of the first fact: every shortlisted sentence is a candidate then
        margin = math.inf if want.multi_part else self.evidence_margin
        close = [s for s in ranked[:self.evidence_sentences] if s.score >= best.score - margin]
        first_gap = None
        rival = None
        for s in close:  # analysed only when the check needs more than the words (rag.nlp.LazyAnalysis)
            if rival is not None and not rival.held_by(f"{s.previous} {s.text}"):
                continue
            others = [h.chunk.text for h in hits if h.chunk.source != s.hit.chunk.source]
            gap = evidence_gap(want, self.analyzer.lazy(s.text), s.previous, self._similar,
                               on_topic=s is not best, passages=others)
            if gap is None:
                return [s, *(r for r in ranked if r is not s)], None
            if s is best:  # worked out only when the best sentence has a gap, not on every answer
                # it says something else than the question ("extensive time" asked about "limited time", "most"
                # asked about "least"): a sentence below it answers only when it holds the question's word
                rival = contrast(want, self.analyzer.lazy(best.text), best.previous, self._similar)
            first_gap = first_gap or gap
        return ranked, first_gap

    def _similar(self, word: str, others: Sequence[str]) -> float:
        """The best cosine similarity of ``word`` to one of ``others`` (one embedding call)."""
        vecs = np.asarray(self.embedder.embed([word, *others]))
        return float(max(vecs[1:] @ vecs[0]))

    def _chosen(self, query: str, ranked: list[_Sentence]) -> list[_Sentence]:
        """The best sentence, and a second one when it scores nearly as well and brings question words the best
        lacks."""
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
            if not overlaps and words - covered:
                chosen.append(s)
                covered |= words
        return chosen

    def _short_answer(self, want: Asked, query: str, chosen: list[_Sentence]) -> tuple[str | None, list[_Sentence]]:
        """The short answer and the quotes, the one holding the short answer first. A candidate span is kept
        only as a whole constituent of the asked kind (rag.whole_answers.whole_answer); a typed question whose
        patterns found nothing whole takes the value of its kind nearest the question's words."""
        found = []  # (key, sentence index, start, end): the best span of each quoted sentence
        analyses = [self.analyzer.lazy(s.text) if self.check_evidence else None for s in chosen]
        for i, (s, an) in enumerate(zip(chosen, analyses, strict=True)):
            if i and an is not None and evidence_gap(want, an, s.previous, self._similar) is not None:
                continue  # a second quote adds context; the short answer comes from evidence only
            # what/which: the phrase that fills the question's gap (rag.what_answers)
            untyped = an is not None and not kind_labels(want) and wants_short_answer(want)
            gap = gap_phrase(query, an) if untyped and an is not None else None
            if gap is not None:
                whole, key = (gap[0], gap[1]), float(gap[2])
            else:  # a typed question, or no noun phrase of its own ("stands for cited question answering")
                named = an.entities if an is not None and want.kind in ("who", "where") else ()
                span = _best_span(query, s.text, want.kind, named)
                key = span[0] if span else TYPED_FALLBACK_KEY
                whole = span[1:] if span else None
            if an is not None and gap is None:
                whole = whole_answer(want, an, *whole) if whole else None
                if whole is None and wants_short_answer(want) and not untyped:
                    near = _question_word_offsets(query, s.text)
                    whole = best_typed(want, an, near)
                    key = TYPED_FALLBACK_KEY
            if an is not None and want.counted and (v := counting_value(want, an, self._similar)) is not None:
                if not whole or not (whole[0] < v.end and v.start < whole[1]):
                    whole, key = (v.start, v.end), min(key, TYPED_FALLBACK_KEY)  # "6" of "6 layers", not "384"
            if whole and an is not None and bare_modifier(want, an, *whole):
                whole = None  # "most important" is no answer to "what ...?": the quote stands alone
            if whole and (whole[1] - whole[0]) < len(s.text):
                # the best sentence is preferred, but "14" right before "nations" in the second one beats a
                # number far from the question's words in the first
                found.append((key + LATER_SENTENCE_PENALTY * i, i, whole[0], whole[1]))
        if not found:
            return None, chosen
        _, i, a, b = min(found)
        chosen = [chosen[i], *(c for j, c in enumerate(chosen) if j != i)]
        return chosen[0].text[a:b], chosen

    def stream(self, question: str, hits: Retrieval | Sequence[Hit],
               history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        """The extractive answer is ready at once: its text in one piece, then the Answer."""
        ans = self.answer(question, hits, history)
        yield ans.answer
        yield ans

    def _abstain(self, question: str, hits: tuple[Hit, ...], standalone: str | None, t0: float,
                 note: str | None = None) -> Answer:
        return Answer(
            question=question,
            answer=ABSTAIN_TEXT,
            short_answer=None,
            abstained=True,
            hits=hits,
            timings={"answer": (time.perf_counter() - t0) * 1000},
            backend=self.name,
            standalone_question=standalone,
            notes=(note,) if note else (),
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


def _question_word_offsets(query: str, sentence: str) -> list[int]:
    """Character offsets in ``sentence`` of the words the question also has."""
    qwords = set(content_words(query))
    return [m.start() for m in re.finditer(r"[^\W_]+", sentence) if set(content_words(m.group(0))) & qwords]


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def _citation(n: int, s: _Sentence) -> Citation:
    from rag.citations import citation_for_span

    return citation_for_span(n, s.hit, s.start, s.end, supported=True, score=s.score)
