"""rag.verify with a fake llama (a word-level tokenizer and logits it is told to give): P(yes) from the next-token
logits over both casings, the passages clipped to the token budget, the cached prefix reused, the extractive
answer turned into an abstention below the threshold, and the generative answerer not calling its model then."""

from __future__ import annotations

import ctypes
import math
from typing import Any

import numpy as np
import pytest

from rag.errors import BackendError
from rag.types import ABSTAIN_TEXT, Answer
from rag.verify import (
    NOTE_JUDGED_NO,
    Judgement,
    LlamaVerifier,
    VerifiedAnswerer,
    judged_passages,
)
from tests.unit.test_generative import StubExtractive, answerer, fake, make_hits

VOCAB = ["<pad>", "yes", "Yes", "YES", "no", "No", "NO", "maybe"]


class FakeCtx:
    def __init__(self, owner: FakeLlama) -> None:
        self.owner = owner

    def get_logits_ith(self, i: int) -> Any:
        assert i == -1
        return self.owner.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float))  # what llama.cpp returns


class FakeLlama:
    """Words are tokens (new words get new ids); ``eval`` records what it was given."""

    def __init__(self, logits: dict[str, float]) -> None:
        self.ids = {w: i for i, w in enumerate(VOCAB)}
        self.logits = np.full(64, -20.0, dtype=np.float32)
        for w, v in logits.items():
            self.logits[self.ids[w]] = v
        self.input_ids = np.zeros(4096, dtype=np.int64)
        self.n_tokens = 0
        self.evaluated: list[list[int]] = []
        self._ctx = FakeCtx(self)

    def n_vocab(self) -> int:
        return len(self.logits)

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        out = []
        for w in text.decode().split():
            if w not in self.ids:
                self.ids[w] = 8 + (len(self.ids) % 50)
            out.append(self.ids[w])
        return out

    def detokenize(self, tokens: list[int]) -> bytes:
        back = {i: w for w, i in self.ids.items()}
        return " ".join(back[t] for t in tokens).encode()

    def eval(self, tokens: list[int]) -> None:
        self.evaluated.append(list(tokens))
        self.input_ids[self.n_tokens : self.n_tokens + len(tokens)] = tokens
        self.n_tokens += len(tokens)


def test_p_yes_is_the_share_of_yes_over_yes_and_no_in_every_casing() -> None:
    llama = FakeLlama({"Yes": 2.0, "yes": 1.0, "No": 1.0, "maybe": 5.0})
    j = LlamaVerifier(llama).judge("When did it open?", ["It opened in 1961."])
    yes, no = math.exp(2.0) + math.exp(1.0), math.exp(1.0)
    assert isinstance(j, Judgement) and j.p_yes == pytest.approx(yes / (yes + no), rel=1e-4)
    assert j.prompt_tokens > 0 and j.ms >= 0
    assert LlamaVerifier(FakeLlama({"No": 3.0, "Yes": -1.0})).judge("q", ["p"]).p_yes < 0.05


def test_the_prompt_asks_the_exact_question_over_numbered_passages_clipped_to_the_budget() -> None:
    v = LlamaVerifier(FakeLlama({"Yes": 1.0}), max_tokens=6)
    prompt = v.prompt("Who built it?", ["one two three four", "five six seven eight", "nine ten"])
    assert "[1] one two three four" in prompt and "[2] five …" in prompt, "cut at a whole word"
    assert "seven" not in prompt and "nine" not in prompt
    assert "Question: Who built it?" in prompt and "exact question" in prompt
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")


def test_the_cached_prefix_is_not_evaluated_again() -> None:
    llama = FakeLlama({"Yes": 1.0})
    v = LlamaVerifier(llama)
    v.judge("first question here", ["a passage"])
    v.judge("second question here", ["another passage"])
    first, second = llama.evaluated
    assert len(second) < len(first), "the instructions' tokens were reused from the cache"
    assert llama.n_tokens == len(llama.tokenize(v.prompt("second question here", ["another passage"]).encode()))


def test_a_llama_without_logits_access_is_one_clear_error() -> None:
    llama = FakeLlama({"Yes": 1.0})
    del llama._ctx
    with pytest.raises(BackendError, match="next-token logits"):
        LlamaVerifier(llama).judge("q", ["p"])


class FixedVerifier:
    name = "fixed"

    def __init__(self, p: float) -> None:
        self.p = p
        self.calls: list[tuple[str, list[str]]] = []

    def judge(self, question: str, passages: list[str]) -> Judgement:
        self.calls.append((question, list(passages)))
        return Judgement(self.p, 12.0, 100)


def test_the_evidence_sentences_are_judged_else_the_best_passages() -> None:
    hits = make_hits()
    assert judged_passages(hits, ["It opened in 1961.", "It opened in 1961.", "Twelve live there."]) == [
        "It opened in 1961.", "Twelve live there."]
    assert judged_passages(hits) == [hits[0].chunk.text, hits[1].chunk.text]


def test_the_extractive_answer_is_withheld_when_the_verifier_says_no() -> None:
    hits = make_hits()
    no = FixedVerifier(0.2)
    ans = VerifiedAnswerer(StubExtractive(), no, 0.5).answer("When was it opened?", hits)
    assert ans.abstained and ans.answer == ABSTAIN_TEXT and not ans.citations and ans.short_answer is None
    assert NOTE_JUDGED_NO.format(p=0.2, t=0.5) in ans.notes and ans.timings["verify"] == 12.0
    # what is judged is the sentence the extractive answer quotes
    assert no.calls == [("When was it opened?", ["Halvorsen Station is a research base on the Brannfjell glacier."])]
    yes = VerifiedAnswerer(StubExtractive(), FixedVerifier(0.9), 0.5).answer("When was it opened?", hits)
    assert not yes.abstained and yes.citations and any("P(yes) 0.90" in n for n in yes.notes)
    # an answer the extractive answerer already withholds is not judged
    low = FixedVerifier(0.9)
    assert VerifiedAnswerer(StubExtractive(), low, 0.5).answer("q", make_hits(relevance=0.1)).abstained
    assert low.calls == []
    parts = list(VerifiedAnswerer(StubExtractive(), no, 0.5).stream("When was it opened?", hits))
    assert parts[0] == ABSTAIN_TEXT and isinstance(parts[-1], Answer) and parts[-1].abstained


def test_the_generative_answerer_does_not_ask_its_model_when_the_verifier_says_no() -> None:
    hits = make_hits()
    model = fake("It opened in 1961 [1].")
    ans = answerer(model, verifier=FixedVerifier(0.3), verify_threshold=0.5).answer("When was it opened?", hits)
    assert ans.abstained and model.prompts == [] and ans.backend == "fake:llm"
    assert any("do not answer" in n for n in ans.notes) and ans.timings["verify"] == 12.0
    model = fake("It was opened in 1961 by the Norwegian Polar Institute [1].")
    ans = answerer(model, verifier=FixedVerifier(0.8), verify_threshold=0.5).answer("When was it opened?", hits)
    assert not ans.abstained and model.prompts and any("P(yes) 0.80" in n for n in ans.notes)
