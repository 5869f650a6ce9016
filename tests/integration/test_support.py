"""rag.support with the real embedding model: verbatim, paraphrase, unrelated, wrong number, wrong name."""

from __future__ import annotations

import numpy as np
import pytest

from rag.support import SupportChecker, content_words, is_verbatim, names, numbers

pytestmark = pytest.mark.integration

# Hand-written (not dataset text): one passage as a retrieved chunk would hold it.
EVIDENCE = (
    "China has sent more than 2,000 troops to take part in strategic military exercises in Russia , in a sign of "
    "growing defence cooperation between the two powers. The drills, which will run until September 7, involve "
    "140 aircraft and 60 ships."
)


class CountingEmbedder:
    """The real embedder, counting calls (the check must embed each batch once)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls = 0
        self.name, self.dim = inner.name, inner.dim

    def embed(self, texts):
        self.calls += 1
        return self.inner.embed(texts)


@pytest.fixture(scope="module")
def checker(embedder) -> SupportChecker:
    return SupportChecker(embedder)


@pytest.mark.parametrize(
    "sentence",
    [
        "The drills, which will run until September 7, involve 140 aircraft and 60 ships.",
        "the drills , which will run until  September 7 , involve 140 aircraft and 60 ships [2].",
        '“The drills, which will run until September 7, involve 140 aircraft and 60 ships.” [1]',
        'September 7 — "The drills, which will run until September 7, involve 140 aircraft and 60 ships." [1]',
    ],
)
def test_verbatim_is_supported(checker: SupportChecker, sentence: str) -> None:
    res = checker.check(sentence, [EVIDENCE])
    assert (res.supported, res.method, res.score) == (True, "verbatim", 1.0)


def test_stitched_pieces_must_come_from_the_quoted_sentence() -> None:
    # "60 ships" is in the passage but not inside the quoted sentence: not a verbatim stitch
    assert not is_verbatim('60 ships — "China has sent more than 2,000 troops to take part"', [EVIDENCE])
    assert is_verbatim('2,000 troops — "China has sent more than 2,000 troops to take part"', [EVIDENCE])


def test_paraphrase_is_supported(checker: SupportChecker) -> None:
    res = checker.check("China sent over 2,000 soldiers to military exercises in Russia.", [EVIDENCE])
    assert res.method == "overlap+embedding"
    assert res.supported, res
    assert res.score >= checker.similarity_threshold


def test_unrelated_is_unsupported(checker: SupportChecker) -> None:
    res = checker.check("The Eiffel Tower was finished in 1889 for the world fair.", [EVIDENCE])
    assert not res.supported and res.method == "overlap+embedding"


@pytest.mark.parametrize(
    "claim",
    [
        "China has sent more than 3,000 troops to take part in strategic military exercises in Russia.",
        "China sent over 2,500 soldiers to military exercises in Russia.",
        "The drills will run until September 9.",
        "The drills involve two hundred aircraft.",
    ],
)
def test_wrong_number_is_unsupported(checker: SupportChecker, claim: str) -> None:
    assert not checker.check(claim, [EVIDENCE]).supported


def test_wrong_name_is_unsupported(checker: SupportChecker) -> None:
    claim = "India has sent more than 2,000 troops to military exercises in Russia."
    assert not checker.check(claim, [EVIDENCE]).supported


def test_check_many_embeds_once_and_matches_check(embedder) -> None:
    counting = CountingEmbedder(embedder)
    many = SupportChecker(counting)
    pairs = [
        ("China sent over 2,000 soldiers to military exercises in Russia.", [EVIDENCE]),
        ("The Eiffel Tower was finished in 1889 for the world fair.", [EVIDENCE]),
        ("The drills will run until September 7.", [EVIDENCE, "Another passage."]),
        ("", [EVIDENCE]),
        ("A claim with no evidence.", []),
    ]
    results = many.check_many(pairs)
    assert counting.calls == 1
    assert [r.supported for r in results] == [True, False, True, False, False]
    assert [r.method for r in results[3:]] == ["none", "none"]
    single = SupportChecker(embedder)
    for (sentence, evidence), res in zip(pairs, results, strict=True):
        again = single.check(sentence, evidence)
        assert again.supported == res.supported and np.isclose(again.score, res.score, atol=1e-5)


def test_without_an_embedder_overlap_decides() -> None:
    plain = SupportChecker()
    res = plain.check("China sent over 2,000 soldiers to military exercises in Russia.", [EVIDENCE])
    assert res.method == "overlap" and res.supported
    assert not plain.check("Paris is the capital of France.", [EVIDENCE]).supported


@pytest.mark.parametrize(
    "kwargs", [{"overlap_threshold": 1.5}, {"similarity_threshold": -2}, {"overlap_only_threshold": -0.1}]
)
def test_bad_thresholds_fail_at_construction(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="threshold"):
        SupportChecker(**kwargs)


def test_normalisation_helpers() -> None:
    assert numbers("more than 2,000 troops, three ships and 3.5% [1]") == {"2000", "3", "3.5"}
    assert numbers("two hundred aircraft, twenty-five ships, 3.5 million people") == {"200", "25", "3500000"}
    assert {"china", "send", "troop", "2000"} <= set(content_words("China has sent 2,000 troops [4]."))
    assert names("Guy de Lusignan led Richard’s troops.") == {"guy", "lusignan", "richard"}
