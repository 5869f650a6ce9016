"""The labelled pairs of evals/tools/calibrate_support_generated.py, built from a hand-written eval run."""

from __future__ import annotations

from pathlib import Path

from evals.tools.calibrate_support_generated import article, cited_chunks, pairs_from_cases

DOC = "Halvorsen Station lies on the Fimbul ice shelf. It was opened in 1961 by the Norwegian Polar Institute."
DOC2 = "In winter 14 scientists live at Halvorsen Station."


def case(question: str, answer: str, gold: list[str], span: str, source: str = "Halvorsen-001.txt",
         doc: str = DOC) -> dict:
    start = doc.index(span)
    return {
        "question": question, "answerable": True, "abstained": False, "gold_answers": gold,
        "gold_sources": [source], "answer": answer,
        "citations": [{"n": 1, "source": source, "start": start, "end": start + len(span), "text": span}],
        "retrieved": [{"rank": 1, "source": source, "start": 0, "end": len(doc)}],
    }


def test_a_true_claim_and_its_swapped_twin_are_labelled(tmp_path: Path) -> None:
    (tmp_path / "Halvorsen-001.txt").write_text(DOC, encoding="utf-8")
    (tmp_path / "Halvorsen-002.txt").write_text(DOC2, encoding="utf-8")
    cases = [
        case("When was the station opened?", "The station was opened in 1961 [1].", ["1961"],
             "It was opened in 1961 by the Norwegian Polar Institute."),
        case("How many scientists live there in winter?", "In winter 14 scientists live there [1].", ["14"],
             "In winter 14 scientists live at Halvorsen Station.", "Halvorsen-002.txt", DOC2),
        case("Who opened it?", "I could not find this in the documents.", ["the Norwegian Polar Institute"],
             "It was opened in 1961 by the Norwegian Polar Institute."),
    ]
    cases[2]["abstained"] = True
    assert article(cases[0]) == "Halvorsen"
    assert cited_chunks(cases[0], tmp_path) == {1: DOC}
    pairs = pairs_from_cases(cases, tmp_path)
    supported = [p for p in pairs if p.label]
    swapped = [p for p in pairs if not p.label]
    assert [p.claim.replace(" ", "") for p in supported] == ["Thestationwasopenedin1961.",
                                                           "Inwinter14scientistslivethere."]
    assert [p.evidence for p in supported] == [(DOC,), (DOC2,)]
    # a number is swapped for the other question's number, which the evidence does not hold
    assert {p.claim.replace(" ", "") for p in swapped} == {"Thestationwasopenedin14.",
                                                          "Inwinter1961scientistslivethere."}
    assert all(p.split == "Halvorsen" and p.kind == "swapped" for p in swapped)


def test_a_claim_whose_citation_lacks_the_gold_answer_is_not_labelled(tmp_path: Path) -> None:
    (tmp_path / "Halvorsen-001.txt").write_text(DOC, encoding="utf-8")
    c = case("When was the station opened?", "The station was opened in 1961 [1].", ["1962"],
             "It was opened in 1961 by the Norwegian Polar Institute.")
    assert pairs_from_cases([c], tmp_path) == []
