"""``Asker``: the question path, rewriter -> retriever -> answerer. It is the only place a question is validated,
rewritten and timed; ``ask`` and ``stream`` are the same path (``stream`` yields the answer text as it comes,
then the final :class:`~rag.types.Answer`). ``chain`` is the same path as a LangChain runnable.

A follow-up is rewritten once, here; the retriever's :class:`~rag.types.Retrieval` (the standalone query, its
vector, the hits) is what the answerer gets, so it neither rewrites nor embeds the query again.

The parts come in through the constructor (``rag.interfaces``: a ``Rewriter``, a ``Retriever``, an
``Answerer``), built by the composition root (``ingest.compose``) from the settings.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any

from rag.errors import QuestionError
from rag.interfaces import Answerer, Retriever, Rewriter
from rag.types import Answer, Hit, Retrieval, Turn

MAX_QUESTION_CHARS = 4000

__all__ = ["MAX_QUESTION_CHARS", "Asker", "ElidedFollowUps", "QuestionError", "check_question"]


def check_question(question: Any) -> str:
    """Return the question stripped, or raise QuestionError with what to do."""
    if question is not None and not isinstance(question, str):  # e.g. a number or a list sent through the API
        raise QuestionError(
            f"the question must be text, not {type(question).__name__}: send the question as a string"
        )
    q = (question or "").strip()
    if not q:
        raise QuestionError("the question is empty: type a question about your documents")
    if len(q) > MAX_QUESTION_CHARS:
        raise QuestionError(
            f"the question is {len(q):,} characters long; the limit is {MAX_QUESTION_CHARS:,}: ask a shorter question"
        )
    if not any(ch.isalnum() for ch in q):
        raise QuestionError("the question has no words in it: type a question about your documents")
    return q


class ElidedFollowUps:
    """The rewriter without a chat model: an elliptic follow-up ("and in 2018?") is joined to the question it
    follows (``rag.extractive.contextualize``); a self-contained question is kept as it is."""

    def rewrite(self, question: str, history: Sequence[Turn]) -> str:
        from rag.extractive import contextualize

        return contextualize(question, history)


class Asker:
    """rewriter -> retriever -> answerer for one collection. ``ready`` (the collection's readiness check: repair
    after a crash, refuse an empty collection) runs before every question."""

    def __init__(self, rewriter: Rewriter, retriever: Retriever, answerer: Answerer, *, k: int,
                 ready: Callable[[], None] | None = None) -> None:
        self.rewriter = rewriter
        self.retriever = retriever
        self.answerer = answerer
        self.k = k
        self.ready = ready

    def retrieve(self, query: str, k: int | None = None, source: str | None = None) -> list[Hit]:
        return self.retriever.retrieve(query, k or self.k, source=source)

    def query_for(self, question: str, history: Sequence[Turn]) -> str:
        """The standalone query to retrieve with, given the conversation so far."""
        return self.rewriter.rewrite(question, history) if history else question

    def _retrieve_for(
        self, question: str, history: Sequence[Turn], k: int | None, source: str | None
    ) -> tuple[Retrieval, dict[str, float]]:
        """The retrieve stage of ask, stream and chain: the follow-up rewritten once (its time is ``rewrite``),
        then searched (``retrieve``, the rewrite included), as the Retrieval record the answerer gets."""
        t0 = time.perf_counter()
        query = self.query_for(question, history)
        rewrite_ms = (time.perf_counter() - t0) * 1000
        got = self.retriever.search(query, k or self.k, source=source)
        timings = {"retrieve": (time.perf_counter() - t0) * 1000}
        if history:
            timings["rewrite"] = rewrite_ms
        return got, timings

    def _begin(self, question: Any) -> tuple[str, float]:
        q = check_question(question)
        t0 = time.perf_counter()
        if self.ready is not None:
            self.ready()
        return q, t0

    def chain(self) -> Any:
        """The answering chain as a LangChain runnable: {question, history, k, source} -> Answer."""
        from langchain_core.runnables import RunnableLambda

        def retrieve_step(inp: dict[str, Any]) -> dict[str, Any]:
            got, timings = self._retrieve_for(inp["question"], inp.get("history", ()), inp.get("k"),
                                              inp.get("source"))
            return {**inp, "retrieval": got, "query": got.query, "hits": list(got.hits), "stage_ms": timings}

        def answer_step(inp: dict[str, Any]) -> Answer:
            t0 = time.perf_counter()
            ans = self.answerer.answer(inp["question"], inp["retrieval"], tuple(inp.get("history", ())))
            timings = {**ans.timings, **inp["stage_ms"], "answer": (time.perf_counter() - t0) * 1000}
            return _with(ans, timings=timings, query=inp["query"], question=inp["question"])

        return RunnableLambda(retrieve_step, name="retrieve") | RunnableLambda(answer_step, name="answer")

    def ask(self, question: Any, k: int | None = None, history: Sequence[Turn] = (),
            source: str | None = None) -> Answer:
        q, t0 = self._begin(question)
        ans = self.chain().invoke({"question": q, "history": tuple(history), "k": k, "source": source})
        timings = dict(ans.timings)
        timings["total"] = (time.perf_counter() - t0) * 1000
        return _with(ans, timings=timings)

    def stream(self, question: Any, k: int | None = None, history: Sequence[Turn] = (),
               source: str | None = None) -> Iterator[str | Answer]:
        """Yield answer text as it is produced, then the final Answer."""
        q, t0 = self._begin(question)
        got, stage_ms = self._retrieve_for(q, history, k, source)
        t1 = time.perf_counter()
        final: Answer | None = None
        for part in self.answerer.stream(q, got, tuple(history)):
            if isinstance(part, Answer):
                final = part
            else:
                yield part
        if final is None:
            raise RuntimeError(f"answerer {self.answerer.name} streamed no final Answer")
        timings = {**final.timings, **stage_ms, "answer": (time.perf_counter() - t1) * 1000,
                   "total": (time.perf_counter() - t0) * 1000}
        yield _with(final, timings=timings, query=got.query, question=q)


def _with(ans: Answer, *, timings: dict[str, float], query: str | None = None, question: str | None = None) -> Answer:
    changes: dict[str, Any] = {"timings": timings}
    if query is not None and question is not None and query != question:
        changes["standalone_question"] = query
    return replace(ans, **changes)
