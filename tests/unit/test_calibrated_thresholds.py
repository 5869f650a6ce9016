"""The shipped thresholds are the ones their calibration scripts chose: the JSON each script writes into
evals/figures/ records its choice, and the constant in the code must be that choice (re-run the script and
update both together)."""

from __future__ import annotations

import json

from rag.extractive import MIN_EVIDENCE
from tests.conftest import REPO


def test_min_evidence_is_what_calibrate_abstention_chose() -> None:
    recorded = json.loads((REPO / "evals/figures/abstention.json").read_text(encoding="utf-8"))
    assert recorded["chosen"] == MIN_EVIDENCE, (
        "rag.extractive.MIN_EVIDENCE differs from evals/figures/abstention.json: run "
        "`python -m evals.tools.calibrate_abstention --out evals/figures` and ship the threshold it chooses")
    table = recorded["tables"]["tune: Computational_complexity_theory"]
    row = next(r for r in table if r["threshold"] == MIN_EVIDENCE)
    assert row["false_abstention"] <= recorded["max_false"]


def test_verify_threshold_is_what_calibrate_verifier_chose() -> None:
    from rag.defaults import VERIFY_THRESHOLD

    recorded = json.loads((REPO / "evals/figures/verifier.json").read_text(encoding="utf-8"))
    assert recorded["chosen"] == VERIFY_THRESHOLD, (
        "rag.defaults.VERIFY_THRESHOLD differs from evals/figures/verifier.json: run "
        "`python -m evals.tools.calibrate_verifier` and ship the threshold it chooses")


def test_claim_threshold_is_what_calibrate_support_generated_chose() -> None:
    from rag.defaults import CLAIM_THRESHOLD

    recorded = json.loads((REPO / "evals/figures/support_generated.json").read_text(encoding="utf-8"))
    assert recorded["judge_local"]["threshold_chosen_on_tune"] == CLAIM_THRESHOLD, (
        "rag.defaults.CLAIM_THRESHOLD differs from evals/figures/support_generated.json: run "
        "`python -m evals.tools.calibrate_support_generated RUN --docs DOCS --judge local --out evals/figures` "
        "and ship the threshold it chooses")
