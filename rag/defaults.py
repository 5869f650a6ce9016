"""Defaults shared by the settings and the library functions that take the same knobs, defined once so they
cannot drift apart (no imports: safe to import from anywhere)."""

from __future__ import annotations

CHUNK_SIZE = 128  # max word pieces per chunk (the embedder reads at most 256)
CHUNK_OVERLAP = 24  # word pieces of overlap between neighbouring chunks
VERIFY_THRESHOLD = 0.40  # --verify: abstain below this judged P(the passages answer the question); see rag.verify
CLAIM_THRESHOLD = 0.60  # --verify claims: a cited sentence is unsupported below this judged P(its span states it);
# chosen by evals/tools/calibrate_support_generated --judge local on the SQuAD tune article (evals/figures/)
