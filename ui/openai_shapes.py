"""The shapes of the HTTP APIs: OpenAI's chat-completion request, response, stream chunk and error object, and
the bodies of citeqa's own REST routes (pydantic at the edge; inside, citeqa's frozen records).

A completion carries citeqa's extras beside OpenAI's fields: ``citations`` (n, source, page, start, end, text,
supported: exact spans of the extracted text) and ``citeqa`` (abstained, short_answer, notes). OpenAI clients
ignore fields they do not know; citeqa-aware clients read them."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rag.types import Answer, Turn

MODEL_PREFIX = "citeqa/"
TEXT_PART_TYPES = ("text", "input_text")


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text or "" for p in self.content if p.type in TEXT_PART_TYPES)
        return self.content or ""


class ChatRequest(BaseModel):
    """OpenAI's chat-completion request; parameters citeqa has no use for (temperature, max_tokens...) are
    accepted and ignored, so any OpenAI client works unchanged. ``k``: passages to retrieve (citeqa's own)."""

    model_config = ConfigDict(extra="allow", strict=True)

    model: str = Field(min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    k: int | None = Field(None, ge=1, le=100)


class HistoryTurn(BaseModel):
    model_config = ConfigDict(strict=True)

    question: str
    answer: str


class AskRequest(BaseModel):
    """``POST /api/ask``: what ``citeqa ask`` takes; the answer is the ``ask --json`` object."""

    model_config = ConfigDict(strict=True, extra="forbid")

    question: str
    collection: str | None = None
    k: int | None = Field(None, ge=1, le=100)
    history: list[HistoryTurn] = Field(default_factory=list, max_length=100)
    source: str | None = None


class EvalRequest(BaseModel):
    """``POST /api/eval``: a suite (``GET /api/eval/suites``) over documents (a collection or ``bundled``)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    suite: str
    docs: str
    limit: int | None = Field(None, ge=1)


def question_and_history(messages: list[ChatMessage]) -> tuple[str, list[Turn]]:
    """The last user message is the question; earlier user messages each answered by the assistant message
    after them are the history (system and tool messages are not part of a citeqa conversation)."""
    last = messages[-1]
    if last.role != "user":
        raise ValueError(f"the last message must be the user's question, not a '{last.role}' message")
    history: list[Turn] = []
    pending: str | None = None
    for m in messages[:-1]:
        if m.role == "user":
            pending = m.text()
        elif m.role == "assistant" and pending is not None:
            history.append(Turn(pending, m.text()))
            pending = None
    return last.text(), history


def citations(answer: Answer) -> list[dict[str, Any]]:
    return [{"n": c.n, "source": c.source, "page": c.page, "start": c.start, "end": c.end, "text": c.text,
             "supported": c.supported} for c in answer.citations]


def extras(answer: Answer) -> dict[str, Any]:
    return {"citations": citations(answer),
            "citeqa": {"abstained": answer.abstained, "short_answer": answer.short_answer,
                       "notes": list(answer.notes), "answer": answer.answer}}


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def completion(model: str, answer: Answer) -> dict[str, Any]:
    return {
        "id": new_id(), "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.answer, "refusal": None},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        **extras(answer),
    }


def chunk(cid: str, created: int, model: str, delta: dict[str, Any], finish: str | None = None,
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **(extra or {})}


def model_entry(collection: str) -> dict[str, Any]:
    return {"id": f"{MODEL_PREFIX}{collection}", "object": "model", "created": 0, "owned_by": "citeqa"}


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
