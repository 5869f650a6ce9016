"""Every answerer through the same checks (the Answerer contract): the extractive one and the generative one
(over a scripted chat model: the contract is about the answerer, not the model), with the real embedder.

- ``answer`` and ``stream`` are one path: the streamed pieces are text, the last item is the Answer, and it is
  the answer ``answer`` gives;
- every citation is an exact span of the passage it names;
- with nothing relevant retrieved it abstains, with no citations and no short answer;
- it is built by the composition root from the settings and answers through the Asker.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel

from rag.extractive import ExtractiveAnswerer
from rag.generative import GenerativeAnswerer
from rag.interfaces import Answerer
from rag.types import Answer, Chunk, Hit

pytestmark = pytest.mark.integration

SOURCE = "/docs/halden.txt"
DOC = ("The Halden mill stands on the river Brenna. It employed 340 workers in 2019. "
       "Its wheel was rebuilt in 1911 after a flood.")
QUESTION = "How many workers did the Halden mill employ in 2019?"
REPLY = "The mill employed 340 workers in 2019 [1]."


class Scripted(GenericFakeChatModel):
    """Answers every prompt with REPLY (streamed word by word)."""

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        self.messages = iter([REPLY])
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)

    def _stream(self, messages, stop=None, run_manager=None, **kwargs):  # type: ignore[no-untyped-def]
        self.messages = iter([REPLY])
        return super()._stream(messages, stop=stop, run_manager=run_manager, **kwargs)


def hits(embedder, question: str = QUESTION) -> list[Hit]:
    chunk = Chunk("c0", SOURCE, DOC, 0, len(DOC), index=0)
    sim = float(embedder.embed([question, DOC])[1] @ embedder.embed([question])[0])
    return [Hit(chunk, sim, dense_score=sim, rank=1)]


@pytest.fixture(params=["extractive", "generative"])
def answerer(request, embedder) -> Answerer:
    if request.param == "extractive":
        return ExtractiveAnswerer(embedder)
    return GenerativeAnswerer(Scripted(messages=iter([REPLY])), embedder, name="fake:scripted")


def test_answer_and_stream_are_one_path(answerer: Answerer, embedder) -> None:
    assert isinstance(answerer, Answerer)
    h = hits(embedder)
    ans = answerer.answer(QUESTION, h)
    parts = list(answerer.stream(QUESTION, h))
    *pieces, final = parts
    assert pieces and all(isinstance(p, str) for p in pieces) and isinstance(final, Answer)
    assert (final.answer, final.citations, final.abstained) == (ans.answer, ans.citations, ans.abstained)
    assert not ans.abstained and "340" in ans.answer and ans.backend == answerer.name
    for c in ans.citations:
        assert DOC[c.start : c.end] == c.text and c.source == SOURCE


def test_nothing_relevant_is_an_abstention(answerer: Answerer, embedder) -> None:
    h = [Hit(x.chunk, 0.01, dense_score=0.01, rank=1) for x in hits(embedder, "Who won the 1998 cup final?")]
    ans = answerer.answer("Who won the 1998 cup final in Lisbon?", h)
    assert ans.abstained and ans.citations == () and ans.short_answer is None
    assert answerer.answer("Who won the 1998 cup final in Lisbon?", []).abstained


def test_the_composition_root_wires_the_answerer_into_the_asker(tmp_path: Path, embedder) -> None:
    from ingest.compose import Citeqa
    from rag.asker import Asker, ElidedFollowUps
    from rag.settings import load_settings

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "halden.txt").write_text(DOC, encoding="utf-8")
    qa = Citeqa(load_settings(collection="contract"), embedder=embedder)
    assert qa.ingest([docs], progress=False).ok
    assert isinstance(qa.asker, Asker) and isinstance(qa.asker.rewriter, ElidedFollowUps)
    assert qa.asker.answerer is qa.answerer and isinstance(qa.answerer, ExtractiveAnswerer)
    ans = qa.ask(QUESTION)
    streamed = list(qa.stream(QUESTION))[-1]
    assert ans.short_answer == "340" and streamed.answer == ans.answer
    assert {"retrieve", "answer", "total"} <= set(ans.timings)
    variant = Citeqa(load_settings(collection="contract", hybrid=False), embedder=embedder,
                     collection=qa.collection)
    assert variant.collection is qa.collection and variant.store is qa.store
    assert variant.ask(QUESTION).short_answer == "340"
