"""Judged answers (``--verify local``): before an answer is given, the bundled local model is asked one yes/no
question, "do these passages state the answer to this exact question?", and the probability it gives "yes" is the
score. Below ``verify_threshold`` the answerer abstains, with a note that says what was judged.

Why a judgement and not the model's own answer: asked to answer or say "I could not find this", Qwen2.5 1.5B
answers nearly every on-topic question the passages do not answer (it invents a figure); the probability of "yes"
to the yes/no question separates the two kinds far better (see the issue's measurements and the note of the
session that calibrated ``VERIFY_THRESHOLD`` on the SQuAD tune split).

One judgement is one prompt evaluation and no generation: the prompt's fixed head (the instructions) stays in
llama.cpp's cache between calls, the passages and the question are evaluated, and the next-token logits give
P(yes) / (P(yes) + P(no)) over the casings of both words. What is judged is the evidence the answer would be
drawn from (the sentences the extractive answer quotes; the best passages when it quotes none), cut to
``max_tokens`` tokens in all, because prompt evaluation is the cost on 2 cores (~50 tokens/s).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rag.errors import BackendError
from rag.types import ABSTAIN_TEXT, Answer, Hit, Retrieval, Turn

JUDGE_PASSAGES = 2  # the passages judged: the answer's evidence first, then the best hits
VERIFY_N_CTX = 1024  # the verifier's own llama.cpp context (rag.llm.load_local_llama): instructions + evidence
JUDGE_MAX_TOKENS = 420  # model tokens of passage text judged in all (prompt evaluation is the cost)
NOTE_JUDGED_NO = "the verifier judged that the passages do not answer this question (P(yes) {p:.2f} < {t:.2f})"
NOTE_JUDGED_YES = "the verifier judged that the passages answer this question (P(yes) {p:.2f})"

_CLAIM_SYSTEM = "You check whether a passage supports a sentence. Reply with one word: yes or no."
_CLAIM_ASK = (
    "Passage:\n{passages}\n\nSentence: {sentence}\n\n"
    "Does the passage above state what the sentence says? Reply yes or no."
)
_SYSTEM = "You check whether passages answer a question. Reply with one word: yes or no."
_ASK = (
    "Passages:\n{passages}\n\nQuestion: {question}\n\n"
    "Do the passages above state the answer to this exact question? Reply yes or no."
)


def chatml(system: str, user: str) -> str:
    """One ChatML exchange (Qwen2.5's template) ready for the assistant's first token."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"
    )


@dataclass(frozen=True)
class Judgement:
    """What the verifier said: the probability that the passages answer the question, and what it cost."""

    p_yes: float
    ms: float
    prompt_tokens: int


class LlamaVerifier:
    """rag.interfaces.Verifier over a loaded llama-cpp-python ``Llama`` (the ``local`` model). Thread-safe: calls
    share the model's lock with generation (``rag.llamacpp``)."""

    name = "local"

    def __init__(self, llama: Any, *, max_tokens: int = JUDGE_MAX_TOKENS) -> None:
        self.llama = llama
        self.max_tokens = max_tokens
        self._yes = self._first_tokens(("yes", "Yes", "YES"))
        self._no = self._first_tokens(("no", "No", "NO"))
        if not self._yes or not self._no or self._yes & self._no:
            raise BackendError("verifier: the model's vocabulary has no distinct tokens for yes and no")

    def _first_tokens(self, words: Sequence[str]) -> frozenset[int]:
        return frozenset(self.llama.tokenize(w.encode(), add_bos=False, special=False)[0] for w in words)

    def _clip(self, passages: Sequence[str]) -> list[str]:
        """The passages cut (whole words) so that together they hold at most ``max_tokens`` model tokens."""
        out: list[str] = []
        budget = self.max_tokens
        for p in passages:
            if budget <= 0:
                break
            toks = self.llama.tokenize(p.encode(), add_bos=False, special=False)
            if len(toks) > budget:
                text = self.llama.detokenize(toks[:budget]).decode("utf-8", errors="ignore")
                p = text.rsplit(" ", 1)[0] + " …"
            out.append(p)
            budget -= len(toks)
        return out

    def prompt(self, question: str, passages: Sequence[str]) -> str:
        """The judgement's prompt, rendered (for tests and debugging)."""
        shown = "\n\n".join(f"[{i}] {p.strip()}" for i, p in enumerate(self._clip(passages), 1))
        return chatml(_SYSTEM, _ASK.format(passages=shown, question=question.strip()))

    def judge(self, question: str, passages: Sequence[str]) -> Judgement:
        """P(yes) that ``passages`` state the answer to ``question``."""
        return self._p_yes(self.prompt(question, passages))

    def claim_prompt(self, sentence: str, passages: Sequence[str]) -> str:
        """The claim judgement's prompt, rendered (for tests and debugging)."""
        shown = "\n\n".join(p.strip() for p in self._clip(passages))
        return chatml(_CLAIM_SYSTEM, _CLAIM_ASK.format(passages=shown, sentence=" ".join(sentence.split())))

    def judge_claim(self, sentence: str, passages: Sequence[str]) -> Judgement:
        """P(yes) that ``passages`` state what ``sentence`` says (the support check's question, asked of the
        model)."""
        return self._p_yes(self.claim_prompt(sentence, passages))

    def _p_yes(self, prompt: str) -> Judgement:
        import numpy as np

        from rag.llamacpp import call_lock

        t0 = time.perf_counter()
        tokens = self.llama.tokenize(prompt.encode(), add_bos=False, special=True)
        with call_lock(self.llama):
            logits = self._eval(tokens)
        x = np.asarray(logits, dtype=np.float64)
        x = np.exp(x - x.max())
        yes = float(sum(x[i] for i in self._yes))
        no = float(sum(x[i] for i in self._no))
        p = yes / (yes + no) if yes + no > 0 else 0.5
        if not math.isfinite(p):
            p = 0.5
        return Judgement(p, (time.perf_counter() - t0) * 1000, len(tokens))

    def _eval(self, tokens: list[int]) -> Any:
        """The next-token logits after ``tokens``, reusing the longest prefix already in llama.cpp's cache (the
        instructions) the way ``Llama.generate`` does."""
        import numpy as np

        llama = self.llama
        try:
            cached = list(llama.input_ids[: llama.n_tokens])
            keep = 0
            for a, b in zip(cached, tokens[:-1], strict=False):
                if a != b:
                    break
                keep += 1
            llama.n_tokens = keep
            llama.eval(tokens[keep:])
            ptr = llama._ctx.get_logits_ith(-1)
            return np.ctypeslib.as_array(ptr, shape=(llama.n_vocab(),)).copy()
        except (AttributeError, TypeError) as exc:  # another llama-cpp-python than the one citeqa pins
            raise BackendError(
                f"verifier: this llama-cpp-python has no way to read next-token logits ({exc}): install the "
                "version `make install` builds"
            ) from exc


def judged_passages(hits: Sequence[Hit], evidence: Sequence[str] = (), n: int = JUDGE_PASSAGES) -> list[str]:
    """The texts to judge: the answer's evidence (the sentences its citations quote), else the best hits' text,
    ``n`` in all, without repeats. Judging the evidence sentences rather than whole passages separated answerable
    from unanswerable SQuAD questions better on the tune split and costs a quarter of the prompt (see
    ``VERIFY_THRESHOLD``)."""
    texts = [t for t in dict.fromkeys(e.strip() for e in evidence) if t]
    if not texts:
        texts = [h.chunk.text for h in hits]
    return texts[:n]


def judge_answer(verifier: Any, question: str, hits: Sequence[Hit], ans: Answer) -> Judgement:
    """The verifier's judgement of ``ans``: the sentences it quotes (its citations), else the best hits."""
    return verifier.judge(question, judged_passages(hits, [c.text for c in ans.citations]))


def abstain_judged(ans: Answer, j: Judgement, threshold: float) -> Answer:
    """``ans`` turned into an abstention because the verifier said no."""
    timings = {**ans.timings, "verify": j.ms}
    return replace(
        ans, answer=ABSTAIN_TEXT, short_answer=None, abstained=True, citations=(), unsupported_sentences=(),
        timings=timings, notes=(*ans.notes, NOTE_JUDGED_NO.format(p=j.p_yes, t=threshold)),
    )


class VerifiedAnswerer:
    """An answerer whose answers are judged first (``--verify local`` with the extractive answerer): the inner
    answer is computed (cheap), and when it answers, the verifier judges the passages it comes from."""

    def __init__(self, inner: Any, verifier: Any, threshold: float) -> None:
        self.inner = inner
        self.verifier = verifier
        self.threshold = threshold
        self.name = getattr(inner, "name", "extractive")

    def __getattr__(self, name: str) -> Any:  # the inner answerer's other parts (analyzer, rewrite, ...)
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def answer(self, question: str, hits: Retrieval | Sequence[Hit], history: Sequence[Turn] = ()) -> Answer:
        ans = self.inner.answer(question, hits, history)
        if ans.abstained or not ans.hits:
            return ans
        asked = ans.standalone_question or question
        j = judge_answer(self.verifier, asked, ans.hits, ans)
        if j.p_yes < self.threshold:
            return abstain_judged(ans, j, self.threshold)
        return replace(ans, timings={**ans.timings, "verify": j.ms},
                       notes=(*ans.notes, NOTE_JUDGED_YES.format(p=j.p_yes)))

    def stream(self, question: str, hits: Retrieval | Sequence[Hit],
               history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        ans = self.answer(question, hits, history)
        yield ans.answer
        yield ans
