"""An answer as claims: its sentences, with the citation numbers each one carries.

Used by the support-rate metric: each sentence (markers stripped) is checked against the text of the citations
it names. Splitting and marker parsing are the project's own (``rag.citations.parse_markers``), so eval reads
answers exactly as the answering side writes them (``[1]``, ``[1, 3]``, ``[2-4]``; a marker pushed past a
full stop belongs to the sentence before it).
"""

from __future__ import annotations

from dataclasses import dataclass

ANY_NUMBER = 999  # accept every cited number; numbers with no citation simply bring no evidence


@dataclass(frozen=True)
class Claim:
    text: str  # the sentence with its markers stripped
    cites: tuple[int, ...]  # the citation numbers it carries, in order, without repeats


def split_claims(answer: str) -> list[Claim]:
    """The sentences of ``answer`` with their markers; pieces with no words (only markers) are not claims."""
    from rag.citations import parse_markers

    return [Claim(s.text, tuple(s.cited)) for s in parse_markers(answer, ANY_NUMBER) if s.text.strip()]
