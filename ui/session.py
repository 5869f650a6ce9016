"""What one browser tab owns: its settings and its conversation (plain records; ``gr.State`` deep-copies them
for every new session)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rag.types import Answer, Turn

HISTORY_TURNS = 6  # exchanges a follow-up question sees
CARRIED_TURNS = 100  # exchanges the browser carries (and a replica that never saw the tab restores)
CARRIED_CHARS = 20_000  # characters of one carried question or answer


@dataclass
class Exchange:
    question: str
    collection: str
    answer: Answer | None = None
    error: str | None = None
    vote: str | None = None
    carried: bool = False  # taken from what the page carried (Session.resume): its answer text only


@dataclass
class Session:
    """What one browser tab owns. Deep-copied by gr.State for every new session."""

    collection: str
    k: int
    hybrid: bool
    backend: str  # the name of one of the server's offered backends (Engine.backends), never a spec
    exchanges: list[Exchange] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    selected: int | None = None

    def history(self) -> list[Turn]:
        turns = [
            Turn(e.question, e.answer.answer)
            for e in self.exchanges
            if e.answer is not None and not e.answer.abstained and e.collection == self.collection
        ]
        return turns[-HISTORY_TURNS:]

    def carried(self) -> list[dict[str, Any]]:
        """What the browser keeps of the conversation (a hidden component sent with every question), so that a
        replica that never saw this tab (the one that had it went away) goes on with it: each exchange's
        question, collection and answer text (None when it failed)."""
        return [{"question": e.question, "collection": e.collection,
                 "answer": e.answer.answer if e.answer is not None else None,
                 "abstained": bool(e.answer.abstained) if e.answer is not None else False}
                for e in self.exchanges][-CARRIED_TURNS:]

    def resume(self, carried: Any, shown: Any) -> bool:
        """A fresh session (no exchanges here) takes the conversation the browser carried, and the messages it
        shows, when both are well formed and agree (two messages per exchange); returns whether it did. What
        comes from the browser is the tab's own conversation: it only shapes this tab's follow-ups."""
        if self.exchanges or not isinstance(carried, list) or not isinstance(shown, list) or not carried:
            return False
        carried = carried[-CARRIED_TURNS:]
        exchanges: list[Exchange] = []
        for t in carried:
            if not isinstance(t, dict):
                return False
            q, coll, a = t.get("question"), t.get("collection"), t.get("answer")
            if not (isinstance(q, str) and isinstance(coll, str) and (a is None or isinstance(a, str))):
                return False
            q, a = q[:CARRIED_CHARS], a[:CARRIED_CHARS] if a is not None else None
            answer = None if a is None else Answer(q, a, None, bool(t.get("abstained")))
            exchanges.append(Exchange(q, coll, answer, error=None if a is not None else "(not carried)", carried=True))
        messages = [(m.get("role"), _text_of(m.get("content"))) for m in shown if isinstance(m, dict)]
        messages = messages[-2 * len(exchanges):]
        if len(messages) != 2 * len(exchanges) or not all(
            r in ("user", "assistant") and c is not None for r, c in messages
        ):
            return False
        self.exchanges = exchanges
        self.messages = [{"role": str(r), "content": str(c)} for r, c in messages]
        return True


def _text_of(content: Any) -> str | None:
    """A chat message's content as the Chatbot hands it back (a string, or Gradio 6's list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and isinstance(p.get("text"), str) for p in content):
        return "".join(p["text"] for p in content)
    return None
