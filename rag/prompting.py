"""What the generative answerer sends its model, and what it makes of the raw reply before the claims are checked:

- the numbered passages, fenced as untrusted DATA (``format_passages``), cut to the sentences nearest the question
  for a slow in-process model (``condense``);
- the worked examples of rag/prompts/answer_example.txt (``load_examples``) sent as earlier turns before the real
  prompt of rag/prompts/answer.txt (``build_messages``);
- the reply cut where a weak model starts writing prompt material or copies an example (``truncate_reply``), and
  whether a short reply says the passages hold no answer (``looks_like_not_found``).

``rag.generative`` uses these; tests and tools may use them directly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from html import escape
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from rag.rewrite import load_prompt
from rag.types import ABSTAIN_TEXT, Chunk, Hit

if TYPE_CHECKING:
    from rag.interfaces import Embedder

# sent to the server as stop sequences (OpenAI-compatible servers take at most four)
DEFAULT_STOP = ("</passage>", "<passage", "\nQuestion:", "<end_of_turn>")
STOP_CUT = re.compile(r"</?passage\b|\n\s*Question:|</?question>|<(?:start|end)_of_turn>", re.I)
_FENCE = re.compile(r"<(/?)(passage)", re.I)
_NOT_FOUND = re.compile(
    r"\b(could ?n[o']t|can ?n[o']t|cannot|unable to|do(?:es)? not|don't|doesn't|no)\b.{0,40}"
    r"\b(find|found|contain|mention|information|answer)",
    re.I | re.S,
)


def _fence(text: str) -> str:
    """Passage text with anything that could close or open the DATA fence neutralised."""
    return _FENCE.sub(lambda m: "&lt;" + m.group(1) + m.group(2), text)


def format_passages(hits: Sequence[Hit]) -> str:
    """The numbered passages as they appear in the prompt: ``<passage n="1" source="a.pdf" page="3">…</passage>``."""
    blocks: list[str] = []
    for i, h in enumerate(hits, 1):
        name = Path(h.chunk.source).name or h.chunk.source
        page = f' page="{h.chunk.page}"' if h.chunk.page is not None else ""
        blocks.append(
            f'<passage n="{i}" source="{escape(name, quote=True)}"{page}>\n{_fence(h.chunk.text.strip())}\n</passage>'
        )
    return "\n\n".join(blocks)


@dataclass(frozen=True)
class Example:
    question: str
    passages: tuple[str, ...]
    answer: str


@cache
def load_examples() -> tuple[Example, ...]:
    """The worked examples of rag/prompts/answer_example.txt, in order: each ``question:`` line starts one, its
    ``passage:`` lines are numbered 1..n, and ``answer:`` is the reply (``passage:`` lines may be left out after the
    first example: it then reuses the passages before it). Incomplete examples are skipped."""
    out: list[Example] = []
    question: str | None = None
    passages: list[str] = []
    previous: tuple[str, ...] = ()
    for line in load_prompt("answer_example").splitlines():
        key, sep, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if not sep or line.startswith("#") or not value:
            continue
        if key == "question":
            question, passages = value, []
        elif key == "passage" and question is not None:
            passages.append(value)
        elif key == "answer" and question is not None:
            shown = tuple(passages) or previous
            if shown:
                out.append(Example(question, shown, value))
                previous = shown
            question, passages = None, []
    return tuple(out)


def load_example() -> Example | None:
    """The first worked example (None when the file has none)."""
    examples = load_examples()
    return examples[0] if examples else None


def build_messages(question: str, hits: Sequence[Hit]) -> list[tuple[str, str]]:
    """The conversation sent to the model as (role, text): the worked examples, each as an earlier (user,
    assistant) exchange, then the real prompt (user). One user turn per prompt, no system message: some chat
    templates (Gemma's) drop it."""
    out: list[tuple[str, str]] = []
    for ex in load_examples():
        ex_hits = [
            Hit(Chunk(id=f"example-{i}", source=f"example{i}.txt", text=t, start=0, end=len(t)), 1.0, rank=i)
            for i, t in enumerate(ex.passages, 1)
        ]
        out += [("user", build_prompt(ex.question, ex_hits)), ("assistant", ex.answer)]
    out.append(("user", build_prompt(question, hits)))
    return out


def render_messages(messages: Sequence[tuple[str, str]]) -> str:
    """The conversation as one text, for showing what the model was sent."""
    return "\n\n".join(f"=== {role} ===\n{text}" for role, text in messages)


@cache
def _instruction_lines() -> tuple[str, ...]:
    """Lines of the answer prompt's instructions long enough that finding one in a reply means an echo."""
    lines = (ln.strip().lstrip("- ").strip() for ln in load_prompt("answer").splitlines())
    return tuple(ln for ln in lines if len(ln) >= 30 and "$" not in ln)


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


@cache
def _example_sentences() -> frozenset[str]:
    """The worked examples' questions, passage sentences and answers (not the abstention line), as words: a reply
    sentence that is one of them was copied from an example, not from the real passages."""
    from rag.citations import strip_markers
    from rag.sentences import split_sentences

    out: set[str] = set()
    for ex in load_examples():
        texts = [ex.question, *(p[a:b] for p in ex.passages for a, b in split_sentences(p))]
        if ex.answer != ABSTAIN_TEXT:
            texts.append(strip_markers(ex.answer))
        out.update(w for w in map(_words, texts) if w)
    return frozenset(out)


def truncate_reply(text: str, passages: Sequence[str] = ()) -> str:
    """The reply cut where a weak model starts writing prompt material (a passage tag, a new question, a chat
    turn marker, a line of the instructions) instead of answering, or where it repeats a sentence of a worked
    example that the real ``passages`` do not hold (Qwen2.5 1.5B answered "The Louvre is the most-visited museum
    in the world. [1]" to a question about file types)."""
    from rag.citations import parse_markers

    cut = len(text)
    m = STOP_CUT.search(text)
    if m:
        cut = m.start()
    for line in _instruction_lines():
        i = text.find(line, 0, cut)
        if i >= 0:
            cut = i
    text = text[:cut]
    examples = _example_sentences()
    if examples:
        real = " " + " ".join(_words(p) for p in passages) + " "
        for ms in parse_markers(text, 0):
            key = _words(ms.text)
            if key in examples and f" {key} " not in real:
                return text[: ms.start]
    return text


def condense(question: str, hits: Sequence[Hit], embedder: Embedder, *, sentences: int,
             keep: Sequence[str] = ()) -> list[Hit]:
    """``hits`` with each chunk's text cut to its ``sentences`` sentences most similar to ``question`` (cosine of
    their embeddings), in document order, with `` … `` where sentences were left out. A sentence that holds one of
    ``keep`` (the extractive evidence) is always kept. The hits keep their ids and spans: citations still point
    into the full chunk (the span matcher and the support check read ``chunk.text`` of the original hits).

    Why: on 2 cores the prompt is the cost of an in-process model (~55 tokens/s): five whole passages are ~800
    tokens, ~15 s before the first token; three passages of two sentences are ~200."""
    import numpy as np

    from rag.sentences import split_sentences

    spans = [split_sentences(h.chunk.text) for h in hits]
    flat = [h.chunk.text[a:b] for h, sp in zip(hits, spans, strict=True) for a, b in sp]
    if not flat:
        return list(hits)
    vecs = embedder.embed([question, *flat])
    sims = vecs[1:] @ vecs[0]
    out: list[Hit] = []
    i = 0
    for h, sp in zip(hits, spans, strict=True):
        scores = np.asarray(sims[i : i + len(sp)], dtype=np.float64)
        texts = flat[i : i + len(sp)]
        i += len(sp)
        if len(sp) <= sentences:
            out.append(h)
            continue
        must = {j for j, t in enumerate(texts) if any(k and (k in t or t in k) for k in keep)}
        best = [j for j in np.argsort(-scores) if j not in must][: max(0, sentences - len(must))]
        chosen = sorted(must | set(int(j) for j in best))
        parts: list[str] = []
        for n, j in enumerate(chosen):
            if n == 0 and j > 0 or n > 0 and j != chosen[n - 1] + 1:
                parts.append("…")
            parts.append(texts[j])
        if chosen[-1] < len(sp) - 1:
            parts.append("…")
        out.append(replace(h, chunk=replace(h.chunk, text=" ".join(parts))))
    return out


def build_prompt(question: str, hits: Sequence[Hit]) -> str:
    """The answer prompt for ``question`` over ``hits`` (rag/prompts/answer.txt)."""
    return Template(load_prompt("answer")).safe_substitute(
        passages=format_passages(hits), question=" ".join(question.split())
    )


def looks_like_not_found(text: str) -> bool:
    """A short reply that says the passages do not contain the answer."""
    from rag.citations import strip_markers

    plain = " ".join(strip_markers(text).split())
    return bool(plain) and len(plain.split()) <= 25 and bool(_NOT_FOUND.search(plain))
