"""What one browser tab owns: its settings and its conversation (plain records; ``gr.State`` deep-copies them
for every new session)."""

from __future__ import annotations

from dataclasses import dataclass, field

from rag.types import Answer, Turn

HISTORY_TURNS = 6  # exchanges a follow-up question sees


@dataclass
class Exchange:
    question: str
    collection: str
    answer: Answer | None = None
    error: str | None = None
    vote: str | None = None


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
