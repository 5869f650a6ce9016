"""Short answers to what/which questions (rag.what_answers) on hand-made sentences with the real spaCy pipeline:
the phrase that fills the question's gap, not a word next to the question's words."""

from __future__ import annotations

import pytest

from rag.extractive import ExtractiveAnswerer
from rag.nlp import Analyzer
from rag.text import content_words
from rag.types import Chunk
from rag.what_answers import asked_noun, gap_phrase
from tests.integration.test_extractive import retrieve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def _gap(analyzer: Analyzer, question: str, sentence: str) -> str | None:
    found = gap_phrase(question, analyzer.analyze([sentence])[0])
    return None if found is None else sentence[found[0] : found[1]]


@pytest.mark.parametrize(("question", "sentence", "answer"), [
    # the noun the question asks for, named: "which thesis" -> the one called Brannfjell
    ("What thesis says that every ferry route is a graph?",
     "The Brannfjell thesis says that every ferry route is a graph.", "Brannfjell"),
    # the gap after the question's verb ...
    ("Harbour pilots are trained to read what?",
     "Harbour pilots are trained to read tide tables before every crossing.", "tide tables"),
    # ... and before the question's words
    ("What is the basis for the winter timetable?",
     "The ice reports of the coast guard form the basis for the winter timetable.", "ice reports of the coast guard"),
    # what a thing is called
    ("What is the ferry's cargo deck called?",
     "The cargo deck of the ferry is known as the orlop, and it holds twelve lorries.", "orlop"),
    # the asked noun's own words go: "the conquest of Halden" asked "what conquest" is Halden
    ("What conquest did Brenna take part in?",
     "Brenna took part in the conquest of Halden in her last year at sea.", "Halden"),
    # "X is Y": the side holding fewer of the question's words holds the answer ("course" without the rule)
    ("What is the term for the set of all winter routes of this fleet?",
     "The timetable associated with this fleet is then the set of all winter routes, of course, to obtain a "
     "precise timetable, one has to decide how routes are numbered.", "timetable"),
    # the phrase that depends on the question's verb, not the one that only stands near it ("town council")
    ("What did the harbour board sell in 1911?",
     "In 1911, after a long dispute with the town council, the harbour board sold its oldest ferry.",
     "oldest ferry"),
    # "which version" asks for the number, not the other thing installed (docs/getting-started: "citeqa")
    ("Which version of torch is installed first?",
     "Both targets create a virtual environment in `.venv`, install torch 2.13.0 (the CPU build) first, and then "
     "install citeqa itself with its `dev` and `llamacpp` extras.", "2.13.0"),
])
def test_the_phrase_that_fills_the_gap(analyzer: Analyzer, question: str, sentence: str, answer: str) -> None:
    assert _gap(analyzer, question, sentence) == answer


def test_no_phrase_when_the_sentence_holds_none_of_the_questions_words(analyzer: Analyzer) -> None:
    assert _gap(analyzer, "What thesis says that routes are graphs?", "The ferry leaves at noon.") is None


def test_the_asked_noun(analyzer: Analyzer) -> None:
    assert asked_noun("What type of engine does the ferry have?") == frozenset(content_words("engine"))
    assert asked_noun("Which thesis is it?") == frozenset(content_words("thesis"))
    assert asked_noun("What is the basis for it?") == frozenset()


def test_the_extractive_answer_bolds_the_phrase(embedder, analyzer: Analyzer) -> None:
    text = ("The harbour of Brenna was rebuilt in 1911. The ice reports of the coast guard form the basis for "
            "the winter timetable. Ferries leave every hour in summer.")
    chunk = Chunk("/docs/brenna.txt#0", "/docs/brenna.txt", text, 0, len(text), index=0)
    ans = ExtractiveAnswerer(embedder, analyzer=analyzer).answer(
        "What is the basis for the winter timetable?", retrieve(embedder, [chunk], "basis winter timetable"))
    assert not ans.abstained
    assert ans.short_answer == "ice reports of the coast guard"
    assert "form the basis for the winter timetable" in ans.citations[0].text


@pytest.mark.parametrize(("question", "sentence", "answer"), [
    # who: the person spaCy names, not the place nearer the question's words
    ("Who was the leader when the traders entered the Lofoten sound?",
     "A sailor named Ingrid Solberg led a fleet of traders into the upper Lofoten sound in northern Norway.",
     "Ingrid Solberg"),
    # where: the place, not the person
    ("Where did the fleet winter?", "The fleet wintered with Ingrid Solberg near Tromsø.", "Tromsø"),
])
def test_who_and_where_take_the_name_of_their_kind(analyzer: Analyzer, question: str, sentence: str,
                                                    answer: str) -> None:
    from rag.short_answers import _best_span, question_type

    an = analyzer.analyze([sentence])[0]
    found = _best_span(question, sentence, question_type(question), an.entities)
    assert found is not None and sentence[found[1] : found[2]] == answer


@pytest.mark.parametrize(("question", "sentence", "answer"), [
    # a word written joined to others is not cut out of them: "co-NP", not "co" (NP is the question's word)
    ("In what complexity class do the mirror images of NP problems lie?",
     "Along the same lines, co-NP is the class holding the mirror images of NP problems.", "co-NP"),
    # a bracket the phrase opens is closed
    ("Concrete bounding of fuel use frequently produces timetables contingent upon what?",
     "But bounding the fuel use above by some concrete function g(n) often yields timetables that depend on the "
     "chosen ferry model.", "g(n)"),
    # a modifier grows to the noun it modifies ("Halvard" alone is a piece of "the Halvard routing problem") ...
    ("What is an example of a problem that rests within the harbour complexity class?",
     "The harbour complexity class contains many problems that pilots would like to solve quickly, such as the "
     "Halvard satisfiability problem and the vertex cover problem.", "Halvard satisfiability problem"),
    # a question that asks for two or more things gets the listed siblings too
    ("What are two ferry ports between Halden and Oslo?",
     "Again, there are many ferry ports between the two, such as Moss and Horten, and all of them are busy.",
     "Moss and Horten"),
    ("What are three examples of harbour cranes?",
     "The harbour has many cranes, for example Goliath cranes, tower cranes and gantry cranes.",
     "Goliath cranes, tower cranes and gantry cranes"),
    # ... unless that noun is all the question's words: "the qpdf tool" asked "which tool" is qpdf
    ("Which tool can decrypt an encrypted ferry manifest?",
     "An encrypted ferry manifest can be decrypted with the qpdf tool first.", "qpdf"),
])
def test_a_short_answer_is_never_cut_out_of_a_phrase(analyzer: Analyzer, question: str, sentence: str,
                                                     answer: str) -> None:
    assert _gap(analyzer, question, sentence) == answer
