"""Follow-up questions without a chat model: an elliptic follow-up ("and in 2018?", "who led it?") is joined to
the question it follows; a question that stands on its own after "and"/"but" ("and what happens with a scanned
PDF?") is kept as it is. The answerer then weighs the follow-up's own words above the context's (rag.extractive).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.text import content_words, plain_words
from rag.types import Turn

MAX_CONTEXT_TURNS = 3  # how far back a chain of elliptic follow-ups may reach
ELLIPTIC_MAX_WORDS = 4  # follow-ups this short that do not open with a wh-word or verb are fragments


_CONTINUATION = re.compile(r"^\s*(?:and|but|or|also|so|then|plus|what about|how about|same for|and what about)\b", re.I)
_PRONOUN = re.compile(r"\b(?:it|its|they|them|their|this|that|these|those|he|she|him|her|his|there)\b", re.I)
_WH_OR_AUX = re.compile(
    r"^\s*(?:who|whom|whose|what|which|when|where|why|how|is|are|was|were|do|does|did|can|could|will|would|has|"
    r"have|had|should|name|list|give|tell)\b",
    re.I,
)


def _is_elliptic(question: str) -> bool:
    """A follow-up that only makes sense with the previous question ("and in 2018?", "why?", "who led it?")."""
    words = plain_words(question)
    if not words:
        return False
    lead = _CONTINUATION.match(question)
    if lead and _asks_on_its_own(question[lead.end() :]):
        return False  # "and what happens with a scanned PDF?": a question of its own after the "and"
    if lead or len(words) <= 2:
        return True
    if len(words) <= ELLIPTIC_MAX_WORDS and not _WH_OR_AUX.match(question):
        return True  # a fragment: "in 2018?", "the Chinese contingent?"
    # a short question leaning on a pronoun and naming nothing itself
    has_name = any(w[0].isupper() for w in words[1:])
    return len(words) <= 6 and bool(_PRONOUN.search(question)) and not has_name


_SCAFFOLD = frozenset({"many", "much", "about", "else", "happen", "happens", "happened", "then"})


def _asks_on_its_own(rest: str) -> bool:
    """Whether what follows a continuation word ("and", "but", "also") is a whole question: it opens with a
    wh-word or an auxiliary, leans on no pronoun, and names at least two things of its own (not numbers, not
    "how many"/"what happens" scaffolding): "what happens with a scanned PDF?" does, "how many in 2018?" and
    "who led it?" do not."""
    if not _WH_OR_AUX.match(rest) or _CONTINUATION.match(rest) or _PRONOUN.search(rest):
        return False  # "and what about the Chinese contingent?" is still a "what about" follow-up
    own = [w for w in content_words(rest) if not w[0].isdigit() and w not in _SCAFFOLD]
    return len(own) >= 2


def contextualize(question: str, history: Sequence[Turn]) -> str:
    """The query to retrieve and answer with: an elliptic follow-up is joined to the previous question, e.g.
    "How many troops did China send? and in 2018?"; a self-contained question is returned unchanged.

    When the previous question was itself elliptic, the chain goes back further (at most MAX_CONTEXT_TURNS)."""
    q = question.strip()
    parts = [q]
    for turn in reversed(history[-MAX_CONTEXT_TURNS:]):
        if not _is_elliptic(parts[0]):
            break
        parts.insert(0, turn.question.strip())
    return " ".join(p for p in parts if p)
