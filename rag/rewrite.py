"""Follow-up questions rewritten into standalone ones before retrieval.

With a chat model, the model is asked (rag/prompts/rewrite.txt, a bounded number of tokens) to rewrite the
follow-up using the conversation; an answer that does not look like a question of sensible length is discarded.
Without a chat model, or when the model's rewrite is discarded, the extractive backend's history-aware query
(``rag.extractive.contextualize``) is used, so "and in 2018?" still carries the subject of the previous turn.
Backend failures (server down, timeout) are raised as BackendError, like the answer call would.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache
from importlib.resources import files
from string import Template
from typing import TYPE_CHECKING, Any

from rag.types import Turn

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

HISTORY_TURNS = 3  # the last turns shown to the model
ANSWER_CHARS = 400  # each previous answer is cut to this many characters
MAX_REWRITE_CHARS = 400
_MARKER = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_LABEL = re.compile(r"^\s*(?:\*\*)?(?:standalone question|rewritten question|question|rewrite)\s*[:\-]\s*(?:\*\*)?\s*",
                    re.I)


@cache
def load_prompt(name: str) -> str:
    """The text of ``rag/prompts/<name>.txt``."""
    return files("rag").joinpath("prompts", f"{name}.txt").read_text(encoding="utf-8")


def format_history(history: Sequence[Turn], turns: int = HISTORY_TURNS, answer_chars: int = ANSWER_CHARS) -> str:
    lines: list[str] = []
    for t in list(history)[-turns:]:
        answer = " ".join(_MARKER.sub("", t.answer).split())
        if len(answer) > answer_chars:
            answer = answer[: answer_chars - 1].rstrip() + "…"
        lines.append(f"User: {' '.join(t.question.split())}")
        lines.append(f"Assistant: {answer}")
    return "\n".join(lines)


def rewrite_prompt(question: str, history: Sequence[Turn]) -> str:
    return Template(load_prompt("rewrite")).safe_substitute(
        history=format_history(history), question=" ".join(question.split())
    )


def _norm(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def clean_rewrite(text: str, question: str) -> str | None:
    """The standalone question from the model's reply, or None when the reply is unusable."""
    lines = [ln.strip() for ln in (text or "").strip().splitlines() if ln.strip()]
    if not lines:
        return None
    out = _LABEL.sub("", lines[0]).strip().strip('"“”\'`*').strip()
    if not out and len(lines) > 1:  # "Standalone question:\n<the question>"
        out = lines[1].strip().strip('"“”\'`*').strip()
    limit = max(MAX_REWRITE_CHARS, 3 * len(question))
    if (
        _norm(out) != _norm(question) and _norm(out) in _norm(load_prompt("rewrite"))
    ):  # an echo of the instructions
        return None
    if (
        not out
        or len(out) > limit
        or sum(ch.isalpha() for ch in out) < 3
        or "<" in out  # echoed markup (passages, turn tags)
        or out.lower().startswith(("user:", "assistant:", "conversation", "follow-up", "i could not", "sorry"))
    ):
        return None
    return out


def _fallback(question: str, history: Sequence[Turn]) -> str:
    try:
        from rag.extractive import contextualize
    except ImportError:  # pragma: no cover - extractive ships with citeqa
        return question
    return contextualize(question, history)


def rewrite_question(chat_model: BaseChatModel | None, question: str, history: Sequence[Turn]) -> str:
    """A standalone version of ``question`` given ``history`` (returned unchanged without history)."""
    if not history:
        return question
    if chat_model is None:
        return _fallback(question, history)
    from langchain_core.messages import HumanMessage

    reply: Any = chat_model.invoke([HumanMessage(content=rewrite_prompt(question, history))])
    text = getattr(reply, "text", reply)
    cleaned = clean_rewrite(text if isinstance(text, str) else str(text), question)
    return cleaned if cleaned is not None else _fallback(question, history)
