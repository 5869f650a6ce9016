"""The generative answerer: a chat model writes the answer from numbered passages, and every claim it makes is
checked.

1. Follow-ups are rewritten into a standalone question (rag.rewrite) by the Asker, once per question; the answer
   gets the rewrite in its Retrieval record.
2. Abstention comes first and uses the extractive answerer's rule: when no passage is relevant enough the model
   is not called at all.
3. The prompt (rag/prompts/answer.txt) fences the passages as untrusted DATA between ``<passage n=...>`` tags and
   asks for ``[n]`` markers after each claim. Worked examples (rag/prompts/answer_example.txt) go first as earlier
   user/assistant exchanges: without one Gemma 3 270M repeats the instructions instead of answering, and without
   the second (passages that do not hold the answer -> "I could not find this") Qwen2.5 1.5B (``--llm local``)
   invents an answer for a question its passages do not answer.
   Stop sequences and ``truncate_reply`` cut a reply where a weak model starts writing prompt material.
4. The reply is split into sentences with their markers (rag.citations); every sentence that cites passages is
   support-checked against their text (rag.support); each cited passage becomes a Citation whose span is the
   sentence(s) of the chunk that best match the answer sentences citing it, with ``supported`` set.
   Out-of-range markers are dropped from the text and noted; the rest are renumbered 1..m in order of first
   use (rag.citations.renumber), so ``[n]`` in the answer is ``citations[n-1]``. A substantive sentence the model
   left without a marker gets the marker of the passage that supports it (noted), else it is checked against all
   passages. Sentences no passage supports are listed in ``Answer.unsupported_sentences``.
5. If the model cites nothing checkable, the extractive evidence is attached instead, and a note says so.

``stream`` yields the model's text as it arrives, then the final Answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from string import Template
from typing import TYPE_CHECKING, Any

from rag.defaults import CLAIM_THRESHOLD, VERIFY_THRESHOLD
from rag.errors import BackendError
from rag.prompting import (
    DEFAULT_STOP,
    build_messages,
    build_prompt,
    condense,
    format_passages,
    looks_like_not_found,
    render_messages,
    truncate_reply,
)
from rag.rewrite import load_prompt, rewrite_question
from rag.types import ABSTAIN_TEXT, Answer, Citation, Hit, Retrieval, Turn

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from rag.interfaces import Embedder
    from rag.llm_spec import LlmSpec

__all__ = ["DEFAULT_STOP", "NOTE_CLAIMS_JUDGED", "NOTE_EMPTY", "NOTE_FALLBACK", "NOTE_MODEL_ABSTAINED",
           "NOTE_NOT_ASKED", "GenerativeAnswerer", "agreed_short_answer", "build_messages", "build_prompt",
           "condense", "format_passages", "looks_like_not_found", "render_messages",
           "truncate_reply"]  # the prompt's parts live in rag.prompting

NOTE_FALLBACK = "the model cited nothing checkable; showing the extractive evidence"
NOTE_EMPTY = "the model returned no answer text; showing the extractive answer"
NOTE_NOT_ASKED = "no passage is relevant enough, so the model was not asked"
NOTE_MODEL_ABSTAINED = "the model found no answer in the passages"
NOTE_CLAIMS_JUDGED = ("the verifier judged that the cited sentences do not state {n} sentence(s) of the answer "
                      "(P(yes) < {t:.2f}); they are marked unsupported")
HOP_NEW_PASSAGES = 2  # the second hop's passages that replace the weakest first ones
HOP_KEEP_FIRST = 2  # the first passages the second hop keeps beside its new ones (the bridge and its other half)
MIN_CHECKED_WORDS = 3  # uncited sentences shorter than this (e.g. "Yes.") are not support-checked
def _insert_marker(text: str, start: int, end: int, n: int) -> str:
    """``text`` with `` [n]`` at the end of the sentence ``text[start:end]``, before its closing punctuation."""
    e = start + len(text[start:end].rstrip())
    if e > start and text[e - 1] in ".!?;:":
        e -= 1
    return f"{text[:e]} [{n}]{text[e:]}"


@dataclass(frozen=True)
class _Round:
    """One round of asking the model (the first, or the second hop): what it is sent, and what its answer is made
    from."""

    messages: list[tuple[str, str]]  # (role, text), worked examples first (rag.prompting.build_messages)
    extractive: Answer  # the extractive answer: the relevance check, and the evidence shown when the model cites none
    timings: dict[str, float]  # filled in as the round runs
    common: dict[str, Any]  # the fields every Answer of this question shares (question, hits, backend, standalone)
    hits: list[Hit]  # the passages shown, as they are: citations point into them
    view: list[Hit]  # the same passages as the prompt shows them (condensed)
    standalone: str  # the question as answered (a follow-up rewritten)
    judged: tuple[str, ...] = ()  # notes so far (the verifier's judgement, a second search)
    hopped: bool = False  # the second hop has run (or is not wanted): no other round follows
    hop_query: str | None = None


class GenerativeAnswerer:
    """rag.interfaces.Answerer over a LangChain chat model, with checked citations (see the module doc)."""

    def __init__(
        self,
        chat_model: BaseChatModel,
        embedder: Embedder,
        *,
        name: str = "llm",
        support_checker: Any = None,
        min_relevance: float = 0.3,
        rewrite_model: BaseChatModel | None = None,
        spec: LlmSpec | None = None,
        extractive: Any = None,
        verifier: Any = None,
        verify_threshold: float = VERIFY_THRESHOLD,
        claim_judge: Any = None,
        claim_threshold: float = CLAIM_THRESHOLD,
        prompt_passages: int | None = None,
        passage_sentences: int | None = None,
        chained_view: tuple[int, int] | None = None,
        retrieve: Callable[[str, int], list[Hit]] | None = None,
        hop_first: bool = False,
        stop: Sequence[str] | None = DEFAULT_STOP,
    ) -> None:
        self.name = name
        self.stop = list(stop) if stop else None
        self.chat_model = chat_model
        self.rewrite_model = rewrite_model
        self.embedder = embedder
        self.min_relevance = min_relevance
        self.spec = spec
        self._support = support_checker
        self._extractive = extractive
        self.verifier = verifier  # rag.verify: judges the passages before the model is asked (None: not judged)
        self.verify_threshold = verify_threshold
        # rag.verify: judges each cited sentence the offline support check passes (--verify claims; None: not)
        self.claim_judge = claim_judge
        self.claim_threshold = claim_threshold
        # what the model reads (None: everything): the best ``prompt_passages`` hits, each cut to its
        # ``passage_sentences`` sentences nearest the question (``condense``; the in-process local model); a
        # question whose answer needs two passages reads ``chained_view`` (passages, sentences) when set
        self.prompt_passages = prompt_passages
        self.passage_sentences = passage_sentences
        self.chained_view = chained_view
        # the second hop: when the model finds no answer, it names what to look up; ``retrieve(query, k)`` fetches
        # it and the model answers once more (one extra round at most). None: no second hop.
        self.retrieve = retrieve
        # also hop *before* answering a question that chains two facts (off: on HotpotQA-30 it did not raise
        # answer_contains, 0.400 -> 0.367, and doubled the answer time)
        self.hop_first = hop_first
        self.last_prompt: str | None = None  # the prompt of the latest call that asked the model (for debugging)

    # -- parts ----------------------------------------------------------------------------------------------
    @property
    def support_checker(self) -> Any:
        if self._support is None:
            from rag.support import SupportChecker

            self._support = SupportChecker(self.embedder)
        return self._support

    @property
    def extractive(self) -> Any:
        if self._extractive is None:
            from rag.extractive import ExtractiveAnswerer

            self._extractive = ExtractiveAnswerer(self.embedder, min_relevance=self.min_relevance)
        return self._extractive

    def _error(self, exc: BaseException) -> BackendError:
        from rag.backend_errors import backend_error

        return backend_error(exc, self.spec, self.name)

    # -- conversation ---------------------------------------------------------------------------------------
    def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        """The standalone question for a follow-up (the chat model rewrites it). The Asker calls this once per
        question and hands the answer the rewrite in its Retrieval, so nothing rewrites twice."""
        if not history:
            return question
        try:
            return rewrite_question(self.rewrite_model or self.chat_model, question, history)
        except Exception as exc:
            raise self._error(exc) from exc

    def prompt_for(self, question: str, hits: Retrieval | Sequence[Hit], history: Sequence[Turn] = ()) -> str:
        """What the model is sent for this question (after rewriting a follow-up): the worked example and the
        prompt, rendered as one text."""
        got = Retrieval.of(hits, lambda: self.rewrite(question, history))
        return render_messages(build_messages(got.query, self._shown(got.query, got.hits)[1]))

    def _shown(self, question: str, hits: Sequence[Hit], keep: Sequence[str] = (),
               chained: bool | None = None, at_least: int = 0) -> tuple[list[Hit], list[Hit]]:
        """(the hits the model is shown, as they are; the same as the prompt shows them, condensed). ``chained``:
        the answer needs two passages (a second hop, or a question that ``chains_facts``; None: judged from
        ``question``), so the model reads the ``chained_view`` when one is set; ``at_least`` passages are shown
        however few the view has (the second hop's: the first ones kept and the new ones)."""
        from rag.answer_check import chains_facts

        passages, sentences = self.prompt_passages, self.passage_sentences
        if self.chained_view is not None and (chains_facts(question) if chained is None else chained):
            passages, sentences = self.chained_view
        if passages:
            passages = max(passages, at_least)
        shown = list(hits)[:passages] if passages else list(hits)
        if not sentences:
            return shown, shown
        return shown, condense(question, shown, self.embedder, sentences=sentences, keep=keep)

    def _lc_messages(self, messages: Sequence[tuple[str, str]]) -> list[Any]:
        from langchain_core.messages import AIMessage, HumanMessage

        return [AIMessage(content=t) if role == "assistant" else HumanMessage(content=t) for role, t in messages]

    # -- answering --------------------------------------------------------------------------------------------
    def answer(self, question: str, hits: Retrieval | Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        state = self._prepare(question, hits, history)
        if isinstance(state, Answer):
            return state
        ans = self._finish(state, self._invoke(state))
        hop = None if state.hopped or not _model_abstained(ans) else self._second_hop(state)
        return ans if hop is None else self._finish(hop, self._invoke(hop))

    def stream(self, question: str, hits: Retrieval | Sequence[Hit],
               history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        """Yield the model's text piece by piece as it is generated, then the final Answer (last)."""
        state = self._prepare(question, hits, history)
        if isinstance(state, Answer):
            yield state.answer
            yield state
            return
        parts: list[str] = []
        yield from self._stream_into(state, parts)
        ans = self._finish(state, "".join(parts))
        hop = None if state.hopped or not _model_abstained(ans) else self._second_hop(state)
        if hop is None:
            yield ans
            return
        yield f"\n\n(Searching the documents again for: {hop.hop_query})\n\n"
        parts = []
        yield from self._stream_into(hop, parts)
        yield self._finish(hop, "".join(parts))

    def _invoke(self, state: _Round) -> str:
        """The model's whole reply to ``state``'s messages; its time is added to ``timings["generate"]``."""
        t0 = time.perf_counter()
        try:
            reply = self.chat_model.invoke(self._lc_messages(state.messages), stop=self.stop)
        except Exception as exc:
            raise self._error(exc) from exc
        timings = state.timings
        timings["generate"] = timings.get("generate", 0.0) + (time.perf_counter() - t0) * 1000
        return _text_of(reply)

    def _stream_into(self, state: _Round, parts: list[str]) -> Iterator[str]:
        """Yield the model's reply to ``state``'s messages piece by piece, collecting them in ``parts``; the
        first piece's time is ``timings["first_token"]`` (of the first round), the whole is added to
        ``timings["generate"]``."""
        timings = state.timings
        t0 = time.perf_counter()
        try:
            for chunk in self.chat_model.stream(self._lc_messages(state.messages), stop=self.stop):
                piece = _text_of(chunk)
                if not piece:
                    continue
                timings.setdefault("first_token", (time.perf_counter() - t0) * 1000)
                parts.append(piece)
                yield piece
        except Exception as exc:
            raise self._error(exc) from exc
        timings["generate"] = timings.get("generate", 0.0) + (time.perf_counter() - t0) * 1000

    def _second_hop(self, state: _Round) -> _Round | None:
        """The state of the second round (at most one per question; a retriever must be wired in): the model
        names what to look up (rag/prompts/hop.txt), that is retrieved, and the model is asked over the best
        first passages followed by the new ones. It runs before the answer when the question chains two facts
        (``rag.answer_check.chains_facts``: "the director of the film that ...") and after it when the model found
        no answer. None when the model names nothing new or the search finds no other passage."""
        if self.retrieve is None:
            return None
        from langchain_core.messages import HumanMessage

        standalone = state.standalone
        prompt = Template(load_prompt("hop")).safe_substitute(
            passages=format_passages(state.view), question=standalone)
        t0 = time.perf_counter()
        try:
            reply = (self.rewrite_model or self.chat_model).invoke([HumanMessage(content=prompt)], stop=self.stop)
        except Exception as exc:
            raise self._error(exc) from exc
        query = _one_query(_text_of(reply))
        timings = dict(state.timings)
        timings["hop_query"] = (time.perf_counter() - t0) * 1000
        if not query or query.lower() == standalone.lower():
            return None
        t0 = time.perf_counter()
        first: list[Hit] = state.hits
        more = [h for h in self.retrieve(query, len(first) or 3) if h.chunk.id not in {f.chunk.id for f in first}]
        timings["hop_retrieve"] = (time.perf_counter() - t0) * 1000
        if not more:
            return None
        keep = max(HOP_KEEP_FIRST, len(first) - HOP_NEW_PASSAGES)
        hits = [*first[:keep], *more[:HOP_NEW_PASSAGES]]
        shown, view = self._shown(f"{standalone} {query}", hits, [c.text for c in state.extractive.citations],
                                  chained=True, at_least=len(hits))
        messages = build_messages(standalone, view)
        self.last_prompt = render_messages(messages)
        common = {**state.common, "hits": (*state.common["hits"], *more[:HOP_NEW_PASSAGES])}
        note = f"a second search, for \"{query}\", added {len(more[:HOP_NEW_PASSAGES])} passage(s)"
        return replace(state, messages=messages, hits=shown, view=view, common=common, timings=timings,
                       judged=(*state.judged, note), hop_query=query, hopped=True)

    def _prepare(self, question: str, hits: Retrieval | Sequence[Hit],
                 history: Sequence[Turn]) -> Answer | _Round:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        got = Retrieval.of(hits, lambda: self.rewrite(question, history))  # plain hits: rewritten here
        if history and not isinstance(hits, Retrieval):
            timings["rewrite"] = (time.perf_counter() - t0) * 1000
        standalone, hits = got.query, got.hits
        t1 = time.perf_counter()
        ext = self.extractive.answer(standalone, got, ())
        timings["relevance"] = (time.perf_counter() - t1) * 1000
        common = {
            "question": question,
            "hits": tuple(hits),
            "backend": self.name,
            "standalone_question": standalone if standalone != question else None,
        }
        if ext.abstained or not hits:
            return Answer(
                answer=ABSTAIN_TEXT,
                short_answer=None,
                abstained=True,
                timings=timings,
                notes=(NOTE_NOT_ASKED,),
                **common,
            )
        judged: tuple[str, ...] = ()
        if self.verifier is not None:
            from rag.verify import NOTE_JUDGED_YES, abstain_judged, judge_answer

            j = judge_answer(self.verifier, standalone, hits, ext)
            timings["verify"] = j.ms
            if j.p_yes < self.verify_threshold:
                return abstain_judged(replace(ext, timings=timings, notes=(), **common), j, self.verify_threshold)
            judged = (NOTE_JUDGED_YES.format(p=j.p_yes),)
        from rag.answer_check import chains_facts

        chained = chains_facts(standalone)  # the answer needs a second passage
        shown, view = self._shown(standalone, hits, [c.text for c in ext.citations], chained=chained)
        messages = build_messages(standalone, view)
        self.last_prompt = render_messages(messages)
        state = _Round(messages=messages, extractive=ext, timings=timings, common=common, hits=shown, view=view,
                       standalone=standalone, judged=judged)
        if self.retrieve is not None and self.hop_first and chained:  # follow the bridge before answering
            state = self._second_hop(state) or replace(state, hopped=True)
        return state

    def _finish(self, state: _Round, raw: str) -> Answer:
        from rag.citations import parse_markers, renumber, strip_markers

        hits: list[Hit] = state.hits
        timings: dict[str, float] = state.timings
        common: dict[str, Any] = state.common
        ext: Answer = state.extractive
        notes: list[str] = list(state.judged)
        raw = truncate_reply(raw, [h.chunk.text for h in hits]).strip()
        t0 = time.perf_counter()
        sentences = parse_markers(raw, len(hits)) if raw else []
        dropped = list(dict.fromkeys(n for ms in sentences for n in ms.dropped))
        if dropped:
            notes.append(
                f"dropped marker(s) naming passages that were not given: {', '.join(f'[{n}]' for n in dropped)}"
            )
        if not strip_markers(raw):
            return replace(
                ext,
                question=common["question"],
                backend=self.name,
                standalone_question=common["standalone_question"],
                hits=common["hits"],
                timings={**ext.timings, **timings},
                notes=(*ext.notes, *notes, NOTE_EMPTY),
            )
        if not any(ms.cited for ms in sentences) and looks_like_not_found(raw):
            text, _ = renumber(raw, ())
            return Answer(answer=text, short_answer=None, abstained=True, timings=timings,
                          notes=(*notes, NOTE_MODEL_ABSTAINED), **common)
        # a substantive sentence the model left without a marker is cited to the one passage that supports it best
        raw, auto_cited = self._cite_unmarked(raw, sentences, hits)
        if auto_cited:
            sentences = parse_markers(raw, len(hits))
            notes.append(f"{auto_cited} sentence(s) without a marker were cited to the passage that supports them")
        raw, recited = self._recite(raw, sentences, hits)
        if recited:
            sentences = parse_markers(raw, len(hits))
            notes.append(f"{recited} sentence(s) were cited to the passage that supports them instead of the one "
                         "the model named")
        judged_down: list[str] = []
        cits, unsupported, uncited = self._checked_citations(sentences, hits, timings, judged_down)
        if judged_down:
            notes.append(NOTE_CLAIMS_JUDGED.format(n=len(judged_down), t=self.claim_threshold))
        timings["check"] = (time.perf_counter() - t0) * 1000
        if cits:
            text, citations = renumber(raw, cits)  # out-of-range markers go; the rest become 1..m by first use
            if uncited:
                notes.append(f"{uncited} sentence(s) of the answer cite no passage")
        else:
            text, _ = renumber(raw, ())
            citations = tuple(ext.citations)
            notes.append(NOTE_FALLBACK)
        return Answer(
            answer=text,
            short_answer=agreed_short_answer(ext.short_answer, text, unsupported),
            abstained=False,
            citations=tuple(citations),
            unsupported_sentences=tuple(dict.fromkeys(unsupported)),
            timings=timings,
            notes=tuple(notes),
            **common,
        )

    def _checked_citations(self, sentences: Sequence[Any], hits: Sequence[Hit], timings: dict[str, float],
                           judged_down: list[str]) -> tuple[list[Citation], list[str], int]:
        """(one Citation per cited passage, the sentences no passage supports, how many substantive sentences cite
        nothing). Every sentence with markers is checked against the passages it cites; a substantive sentence
        without markers against all of them. With a ``claim_judge`` a cited sentence the offline check passes is
        judged by the model too (the sentences it marks down are added to ``judged_down``)."""
        pairs: list[tuple[str, list[str]]] = []
        checked: list[Any] = []
        uncited = 0
        for ms in sentences:
            if not ms.text:
                continue
            if ms.cited:
                pairs.append((ms.text, [hits[n - 1].chunk.text for n in ms.cited]))
            elif len(ms.text.split()) >= MIN_CHECKED_WORDS and not looks_like_not_found(ms.text):
                uncited += 1
                pairs.append((ms.text, [h.chunk.text for h in hits]))
            else:
                continue
            checked.append(ms)
        results = _check_many(self.support_checker, pairs)
        matcher = _SpanMatcher(self.embedder)
        per_n: dict[int, list[tuple[int, int, bool, float]]] = {}
        unsupported: list[str] = []
        for ms, res in zip(checked, results, strict=True):
            ok = bool(res.supported)
            spans = {n: matcher.best_span(ms.text, hits[n - 1].chunk) for n in ms.cited}
            if ok and spans and self.claim_judge is not None and res.method != "verbatim":
                ok = self._claim_holds(ms.text, [hits[n - 1].chunk.text[a:b] for n, (a, b) in spans.items()],
                                       timings, judged_down)
            if not ok:
                unsupported.append(ms.text)
            for n, (a, b) in spans.items():
                per_n.setdefault(n, []).append((a, b, ok, float(res.score)))
        return [self._citation(n, hits[n - 1], spans) for n, spans in per_n.items()], unsupported, uncited

    def _claim_holds(self, sentence: str, spans: list[str], timings: dict[str, float], judged_down: list[str]) -> bool:
        """The claim judgement (``--verify claims``): the model is asked whether the sentences the citation will
        show state what ``sentence`` says; below ``claim_threshold`` the sentence counts as unsupported (added to
        ``judged_down``). Its time is added to ``timings["verify_claims"]``."""
        from rag.citations import strip_markers

        try:
            j = self.claim_judge.judge_claim(strip_markers(sentence).strip(), spans)
        except Exception as exc:
            raise self._error(exc) from exc
        timings["verify_claims"] = timings.get("verify_claims", 0.0) + float(j.ms)
        if j.p_yes < self.claim_threshold:
            judged_down.append(sentence)
            return False
        return True

    def _cite_unmarked(self, raw: str, sentences: Sequence[Any], hits: Sequence[Hit]) -> tuple[str, int]:
        """``raw`` with a ``[n]`` added to each substantive sentence without markers that passage n supports (the
        best-scoring one when several do), and how many got one. Small models often state a fact from the
        passages and forget its marker (Qwen2.5 1.5B, ``--llm local``: 21 of 36 answers on the docs suite)."""
        todo = [ms for ms in sentences if ms.text and not ms.cited and not ms.dropped
                and len(ms.text.split()) >= MIN_CHECKED_WORDS
                and not looks_like_not_found(ms.text)]
        if not todo or not hits:
            return raw, 0
        found = self._supporting_passages(todo, hits)
        for ms, n in sorted(found, key=lambda f: -f[0].end):  # from the end, so earlier offsets stay valid
            raw = _insert_marker(raw, ms.start, ms.end, n)
        return raw, len(found)

    def _recite(self, raw: str, sentences: Sequence[Any], hits: Sequence[Hit]) -> tuple[str, int]:
        """``raw`` with the markers of each sentence that its cited passages do not support, but another shown
        passage does, replaced by that passage's (the best-scoring one), and how many were. Small models number
        passages wrongly: "Normandy is located in France [1]" where passage 2 says so (Qwen2.5 1.5B, ``--llm
        local``: 71 of the 136 unsupported sentences of a SQuAD 2.0 small run were supported by another shown
        passage)."""
        from rag.citations import strip_markers

        cited = [ms for ms in sentences if ms.text and ms.cited and len(ms.text.split()) >= MIN_CHECKED_WORDS]
        if not cited or len(hits) < 2:
            return raw, 0
        own = _check_many(self.support_checker, [(ms.text, [hits[n - 1].chunk.text for n in ms.cited])
                                                 for ms in cited])
        wrong = [ms for ms, res in zip(cited, own, strict=True) if not res.supported]
        if not wrong:
            return raw, 0
        found = self._supporting_passages(wrong, hits)
        for ms, n in sorted(found, key=lambda f: -f[0].end):  # from the end, so earlier offsets stay valid
            segment = raw[ms.start : ms.end]
            piece = strip_markers(segment)
            lead = segment[: len(segment) - len(segment.lstrip())]
            raw = raw[: ms.start] + lead + _insert_marker(piece, 0, len(piece), n) + raw[ms.end :]
        return raw, len(found)

    def _supporting_passages(self, sentences: Sequence[Any], hits: Sequence[Hit]) -> list[tuple[Any, int]]:
        """(sentence, passage number) for each sentence that some shown passage it does not already cite supports
        on its own: the best-scoring one (ties: the higher-ranked one)."""
        k = len(hits)
        results = _check_many(self.support_checker, [(ms.text, [h.chunk.text]) for ms in sentences for h in hits])
        found: list[tuple[Any, int]] = []
        for i, ms in enumerate(sentences):
            res = results[i * k : (i + 1) * k]
            ok = [j for j in range(k) if res[j].supported and j + 1 not in ms.cited]
            if ok:
                found.append((ms, max(ok, key=lambda j: float(res[j].score)) + 1))
        return found

    @staticmethod
    def _citation(n: int, hit: Hit, spans: list[tuple[int, int, bool, float]]) -> Citation:
        """One citation per passage number: the chunk span covering the sentences that best match the answer
        sentences citing it; supported only when every one of those answer sentences is supported."""
        from rag.citations import citation_for_span

        start = min(a for a, _, _, _ in spans)
        end = max(b for _, b, _, _ in spans)
        supported = all(ok for _, _, ok, _ in spans)
        return citation_for_span(n, hit, start, end, supported=supported, score=max(s for _, _, _, s in spans))


class _SpanMatcher:
    """Finds, inside a chunk, the sentence most similar to an answer sentence (embeddings cached per answer)."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self._chunks: dict[str, tuple[list[tuple[int, int]], Any]] = {}

    def best_span(self, sentence: str, chunk: Any) -> tuple[int, int]:
        """Local (start, end) offsets in ``chunk.text`` of its best-matching sentence."""
        import numpy as np

        from rag.sentences import split_sentences
        from rag.titles import is_heading

        key = chunk.id or str(id(chunk))
        if key not in self._chunks:
            spans = split_sentences(chunk.text) or [(0, len(chunk.text))]
            # a heading (the document's title) shares the answer's names but states nothing: not the cited span
            spans = [s for s in spans if not is_heading(chunk.text, *s, opens_document=chunk.start == 0)] or spans
            vecs = self.embedder.embed([chunk.text[a:b] for a, b in spans])
            self._chunks[key] = (spans, vecs)
        spans, vecs = self._chunks[key]
        if len(spans) == 1:
            return spans[0]
        q = self.embedder.embed([sentence])[0]
        sims = np.asarray(vecs) @ np.asarray(q)
        # a little lexical overlap breaks near-ties in favour of the sentence that shares the answer's words
        words = {w for w in re.findall(r"\w+", sentence.lower()) if len(w) > 2}
        if words:
            overlap = np.array(
                [len(words & set(re.findall(r"\w+", chunk.text[a:b].lower()))) / len(words) for a, b in spans]
            )
            sims = sims + 0.1 * overlap
        return spans[int(np.argmax(sims))]


def _check_many(checker: Any, pairs: list[tuple[str, list[str]]]) -> list[Any]:
    if not pairs:
        return []
    many = getattr(checker, "check_many", None)
    if callable(many):
        return list(many(pairs))
    return [checker.check(s, ev) for s, ev in pairs]


def agreed_short_answer(short: str | None, text: str, unsupported: Sequence[str]) -> str | None:
    """The extractive answer's short answer when the model's answer says it too, in a sentence the support check
    passed: two readers of the passages agree on it, so it is shown in bold above the model's text. None when
    the model wrote something else (its words stand alone then, as a quote does without a short answer)."""
    from rag.citations import strip_markers

    if not short:
        return None
    said = " ".join(strip_markers(text).split())
    for sentence in unsupported:
        said = said.replace(" ".join(strip_markers(sentence).split()), " ")
    found = re.search(rf"(?<!\w){re.escape(' '.join(short.split()).casefold())}(?!\w)", said.casefold())
    return short if found else None


def _model_abstained(ans: Answer) -> bool:
    return ans.abstained and NOTE_MODEL_ABSTAINED in ans.notes


def _one_query(text: str) -> str:
    """The search query of a hop reply: its first line, without quotes or a "Search query:" label."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    line = re.sub(r"^(?:search query|query)\s*:\s*", "", line, flags=re.I).strip().strip("\"'`").strip()
    # the model copies the passages' file names (source="Armando_Iannucci.txt") into queries: a title joined by
    # underscores is searched for as words; code names (CITEQA_DATA_DIR, max_tokens) stay as they are
    line = re.sub(r"(?<=[\w)])\.(?:txt|md)\b", "", line, flags=re.I)
    line = re.sub(r"\S*_\S*", lambda m: m.group().replace("_", " ") if _TITLE_JOINED.fullmatch(m.group())
                  else m.group(), line)
    return " ".join(line.split())[:200]


_TITLE_JOINED = re.compile(r"(?=.*[a-z])[\W\d]*[A-Z][^_\s]*(?:_[^_\s]+)+")


def _text_of(message: Any) -> str:
    text = getattr(message, "text", message)
    if isinstance(text, str):
        return str(text)
    if callable(text):  # langchain-core < 1: text() was a method
        text = text()
    return text if isinstance(text, str) else str(text or "")
