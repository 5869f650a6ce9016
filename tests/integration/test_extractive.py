"""The extractive answerer with the real embedding model, on hits built by hand: the vostok article (needs
../shared) and a small hand-written text (always runs)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from evals.claims import split_claims
from rag.extractive import ExtractiveAnswerer, contextualize, question_type, short_answer_span
from rag.interfaces import Answerer
from rag.sentences import split_sentences
from rag.support import SupportChecker
from rag.types import ABSTAIN_TEXT, Answer, Chunk, Hit, Turn

pytestmark = pytest.mark.integration

SOURCE = "/docs/vostok-2022.txt"


def make_chunks(text: str, source: str, per_chunk: int = 3, stride: int = 2) -> list[Chunk]:
    """Chunks of ``per_chunk`` sentences every ``stride`` sentences: neighbours share a sentence, as real
    overlapping chunks do."""
    spans = split_sentences(text)
    out = []
    for i in range(0, len(spans), stride):
        a, b = spans[i][0], spans[min(i + per_chunk, len(spans)) - 1][1]
        out.append(Chunk(f"{source}#{i}", source, text[a:b], a, b, page=1, index=len(out)))
    return out


def retrieve(embedder, chunks: Sequence[Chunk], query: str, k: int = 5) -> list[Hit]:
    """Dense top-k by cosine, as the retriever's dense half would return them."""
    vecs = embedder.embed([query, *(c.text for c in chunks)])
    sims = vecs[1:] @ vecs[0]
    order = np.argsort(-sims, kind="stable")[:k]
    return [Hit(chunks[j], float(sims[j]), dense_score=float(sims[j]), rank=r + 1) for r, j in enumerate(order)]


def chunks_of(docs: dict[str, str]) -> list[Chunk]:
    """One chunk per document of ``docs`` (path -> text), the whole text."""
    return [Chunk(f"{src}#0", src, text, 0, len(text), index=0) for src, text in docs.items()]


@pytest.fixture(scope="module")
def answerer(embedder) -> ExtractiveAnswerer:
    return ExtractiveAnswerer(embedder)


@pytest.fixture
def vostok(vostok_dir: Path) -> str:
    return (vostok_dir / "vostok-2022.txt").read_text(encoding="utf-8")


@pytest.fixture
def ask(vostok: str, embedder, answerer: ExtractiveAnswerer):
    chunks = make_chunks(vostok, SOURCE)

    def _ask(question: str, history: Sequence[Turn] = ()) -> Answer:
        hits = retrieve(embedder, chunks, contextualize(question, history))
        ans = answerer.answer(question, hits, history)
        for c in ans.citations:  # every citation slices the document back exactly
            assert vostok[c.start : c.end] == c.text
        return ans

    return _ask


def test_is_an_answerer(answerer: ExtractiveAnswerer) -> None:
    assert isinstance(answerer, Answerer) and answerer.name == "extractive"


def test_how_many_troops(ask, vostok: str) -> None:
    ans = ask("How many troops did China send?")
    assert not ans.abstained and ans.short_answer == "more than 2,000"
    first = ans.citations[0]
    assert "China has sent more than 2,000 troops" in first.text
    assert (first.n, first.source, first.page, first.supported) == (1, SOURCE, 1, True)
    # the citation is exactly the sentence holding the answer
    assert (first.start, first.end) in split_sentences(vostok)
    assert ans.answer.startswith('more than 2,000 — "') and f'"{first.text}" [1]' in ans.answer
    assert ans.backend == "extractive" and set(ans.timings) == {"answer"} and ans.timings["answer"] > 0
    assert ans.standalone_question is None and len(ans.hits) == 5


@pytest.mark.parametrize(
    ("question", "short", "in_sentence"),
    [
        ("How many soldiers took part in 2018?", "Around 300,000", "Around 300,000 soldiers had taken part"),
        ("How many Chinese soldiers took part in 2018?", "3,200", "compared with 3,200 soldiers"),
        ("When do the drills run until?", "September 7", "which will run until September 7"),
        ("How many aircraft take part in the drills?", "140", "140 aircraft and 60 ships"),
        ("How many ships will take part in the drills?", "60", "140 aircraft and 60 ships"),
        ("Who reported that China sent three warships?", "Xinhua", "three warships"),
    ],
)
def test_short_answers(ask, question: str, short: str, in_sentence: str) -> None:
    ans = ask(question)
    assert ans.short_answer == short
    assert in_sentence in ans.citations[0].text
    assert short in ans.citations[0].text


@pytest.mark.parametrize(
    "question", ["What is the population of Paris?", "Who wrote Hamlet?", "How do I bake bread?"]
)
def test_off_topic_questions_abstain(ask, question: str) -> None:
    ans = ask(question)
    assert ans.abstained and ans.answer == ABSTAIN_TEXT
    assert ans.citations == () and ans.short_answer is None and len(ans.hits) == 5


def test_no_hits_abstain(answerer: ExtractiveAnswerer) -> None:
    ans = answerer.answer("How many troops did China send?", [])
    assert ans.abstained and ans.answer == ABSTAIN_TEXT and ans.citations == () and ans.short_answer is None


def test_follow_up_uses_the_previous_question(ask) -> None:
    history = [Turn("How many troops did China send?", 'more than 2,000 — "China has sent ..." [1]')]
    assert contextualize("and in 2018?", history) == "How many troops did China send? and in 2018?"
    ans = ask("and in 2018?", history)
    assert ans.standalone_question == "How many troops did China send? and in 2018?"
    assert ans.question == "and in 2018?"
    assert ans.short_answer == "3,200"


def test_overlapping_chunks_are_quoted_once(ask) -> None:
    ans = ask("How many nations take part?")
    spans = [(c.start, c.end) for c in ans.citations]
    assert len(spans) == len(set(spans))
    assert [c.n for c in ans.citations] == list(range(1, len(spans) + 1))


def test_every_answer_sentence_is_verbatim_supported(ask, embedder) -> None:
    checker = SupportChecker(embedder)
    # "How many nations take part?" is not asked here: the top five chunks of this test's dense-only retrieval
    # do not hold the "14 nations" sentence, and the answerer now abstains ("does not mention nations") instead
    # of quoting "Around 300,000 soldiers had taken part" (test_honest_answers.py covers that behaviour)
    for q in ("How many troops did China send?", "How many warships did China send?", "When do the drills run until?"):
        ans = ask(q)
        assert not ans.abstained, q
        by_n = {c.n: c.text for c in ans.citations}
        claims = split_claims(ans.answer)
        assert claims and all(cl.cites for cl in claims)
        for cl in claims:
            res = checker.check(cl.text, [by_n[n] for n in cl.cites])
            assert res.supported and res.method == "verbatim", (cl.text, res)


# -- a small hand-written document (no ../shared needed) -----------------------------------------------------------

LIBRARY = (
    "Annual report of the town council.\n\n"
    "The Riverside Library opened in 1987 after a long campaign by local residents. "
    "It holds about 120,000 books and employs 35 staff. "
    "The building was designed by Maria Keller, an architect from Lyon. "
    "Opening hours were extended in March 2021.\n\n"
    "The council also repaired the harbour wall, which had been damaged by storms in 2019. "
    "Repairs cost $3.5 million and were finished in October."
)


@pytest.fixture
def library_hits(embedder):
    chunks = make_chunks(LIBRARY, "/docs/report.txt", per_chunk=2, stride=2)
    return lambda q, **kw: retrieve(embedder, chunks, q, **kw)


@pytest.mark.parametrize(
    ("question", "short"),
    [
        ("How many books does the library hold?", "about 120,000"),
        ("How many staff does the library employ?", "35"),
        ("When did the Riverside Library open?", "1987"),
        ("Who designed the library building?", "Maria Keller"),
        ("How much did the harbour wall repairs cost?", "$3.5 million"),
        ("When were the opening hours extended?", "March 2021"),
    ],
)
def test_small_document(answerer: ExtractiveAnswerer, library_hits, question: str, short: str) -> None:
    ans = answerer.answer(question, library_hits(question, k=3))
    assert ans.short_answer == short
    c = ans.citations[0]
    assert LIBRARY[c.start : c.end] == c.text and short in c.text
    assert c.start > 0  # offsets are absolute in the document, not local to the chunk


def test_hits_without_dense_scores(answerer: ExtractiveAnswerer, library_hits) -> None:
    # a BM25-only retriever gives no dense score: relevance is computed from the passages themselves
    hits = [Hit(h.chunk, h.score, dense_score=None, bm25_score=1.0, rank=h.rank) for h in library_hits("x", k=4)]
    assert answerer.answer("How many books does the library hold?", hits).short_answer == "about 120,000"
    assert answerer.answer("What is the population of Paris?", hits).abstained


def test_bad_config_fails_at_construction(embedder) -> None:
    with pytest.raises(ValueError, match="max_sentences"):
        ExtractiveAnswerer(embedder, max_sentences=0)
    with pytest.raises(ValueError, match="min_relevance"):
        ExtractiveAnswerer(embedder, min_relevance=2.0)


# -- pure helpers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How many troops did China send?", "num"),
        ("What percentage of voters agreed?", "num"),
        ("When do the drills run until?", "date"),
        ("In what year did the Normans invade?", "date"),
        ("Who reported it?", "who"),
        ("Where are the drills held?", "where"),
        ("In what country is Normandy located?", "where"),
        ("What is the Norman architecture idiom?", "other"),
        # a relative who/where/when is no cue; a question word at the end or after a preposition is
        ("What position does the footballer who plays for Benfica play?", "other"),
        ("What was the profession of Ada Holm, whose life was filmed in 1942?", "other"),
        ("What is the population of the town where she was born?", "num"),
        ("Ada Holm worked with the mayor of what city?", "where"),
        ("The ferry company was founded by who?", "who"),
        ("In 1962, who wrote the first timetable?", "who"),
        ("To whom did the harbour board sell the ferry?", "who"),
    ],
)
def test_question_type(question: str, kind: str) -> None:
    assert question_type(question) == kind


def test_short_answer_span_edge_cases() -> None:
    s = "The games are four-yearly and 3,200 soldiers took part in 2018."
    span = short_answer_span("How many soldiers took part in 2018?", s)
    assert span is not None and s[span[0] : span[1]] == "3,200"  # not "four" (of four-yearly), not 2018 (asked)
    assert short_answer_span("How many ships were there?", "No numbers here at all.") is None
    assert short_answer_span("When did it start?", "") is None
    s2 = "It kicked off on Thursday, Russia's ministry said."
    span = short_answer_span("When did the exercise kick off?", s2)
    assert span is not None and s2[span[0] : span[1]] == "Thursday"


@pytest.mark.parametrize(
    ("question", "sentence", "short"),
    [
        ("When does the night ferry leave?", "The night ferry to Osk leaves at 23:40 from pier four.", "23:40"),
        ("Who built the lighthouse?", "The lighthouse at Point Ardent was built in 1874 by the harbour board.",
         "the harbour board"),
        ("Who ruled the duchy of Normandy?", "It was ruled by Richard I of Normandy until 996.", "Richard I"),
        ("How much did the repairs cost?", "Repairs in 2019 cost $3.5 million.", "$3.5 million"),
        ("What year did the storm hit?", "The storm hit in April 1191.", "1191"),
        ("How long did the dough rise?", "The dough rose for 8 to 12 hours.", "8 to 12 hours"),
        ("Where did the naval drills take place?", "Naval drills took place in the Sea of Japan.", "Sea of Japan"),
    ],
)
def test_short_answer_by_type(question: str, sentence: str, short: str) -> None:
    span = short_answer_span(question, sentence)
    assert span is not None and sentence[span[0] : span[1]] == short


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("and in 2018?", "How many troops did China send? and in 2018?"),
        ("What about India?", "How many troops did China send? What about India?"),
        ("Why?", "How many troops did China send? Why?"),
        ("Who is Artyom Lukin?", "Who is Artyom Lukin?"),
        ("When do the drills run until?", "When do the drills run until?"),
        # a whole question after the "and" is asked on its own; scaffolding and pronouns still lean back
        ("and what happens with the Chinese contingent?", "and what happens with the Chinese contingent?"),
        ("and how many in 2018?", "How many troops did China send? and how many in 2018?"),
        ("and what about the Chinese?", "How many troops did China send? and what about the Chinese?"),
        ("and who led it?", "How many troops did China send? and who led it?"),
    ],
)
def test_contextualize(question: str, expected: str) -> None:
    assert contextualize(question, [Turn("How many troops did China send?", "more than 2,000")]) == expected
    assert contextualize(question, []) == question


def test_contextualize_chains_elliptic_follow_ups() -> None:
    history = [Turn("How many troops did China send?", "a"), Turn("and in 2018?", "b")]
    assert contextualize("and in 2014?", history) == "How many troops did China send? and in 2018? and in 2014?"
    assert len(contextualize("and then?", [Turn("and?", "x")] * 10_000)) < 100  # bounded, no recursion


# -- a sentence that refers back, and a question about something the passages do not name ----------------------
TOWNS = {
    "/docs/korvath.txt": "The Korvath bridge over the Senna river is 412 metres long. It was completed in 1897 by the "
    "engineer Ilse Brandt.",
    "/docs/freedonia.txt": "Freedonia is a small country in the Balkan hills. The capital of Freedonia is Marbury, a "
    "city on the river Drava.",
}


@pytest.fixture(scope="module")
def towns(embedder, answerer: ExtractiveAnswerer):
    chunks = chunks_of(TOWNS)

    def _ask(question: str) -> Answer:
        ans = answerer.answer(question, retrieve(embedder, chunks, question, k=2))
        for c in ans.citations:
            assert TOWNS[c.source][c.start : c.end] == c.text
        return ans

    return _ask


def test_a_sentence_opening_with_a_pronoun_counts_the_words_of_the_sentence_before(towns) -> None:
    ans = towns("When was the Korvath bridge completed?")
    assert ans.short_answer == "1897"
    assert ans.citations[0].text.startswith("It was completed in 1897")  # the quote stays the sentence itself


def test_abstains_when_no_passage_names_what_the_question_names(towns) -> None:
    assert towns("What is the capital of Atlantis?").abstained
    assert towns("What is the capital of Freedonia?").short_answer == "Marbury"
    assert not towns("what is the capital of freedonia?").abstained  # lower case names nothing: no such rule


def test_question_names() -> None:
    from rag.extractive import question_names

    assert question_names("What is the capital of Atlantis?") == ["Atlantis"]
    assert question_names("Who completed the Korvath bridge in the 1890s?") == ["Korvath"]
    assert question_names("how long is it?") == []
    assert question_names("Atlantis: where is it?") == []  # the first word is capitalised anyway


# -- conflicting sources ------------------------------------------------------------------------------------------
RIVALS = {
    "/docs/census-2019.txt": "The Halden mill employed 340 workers in 2019. Most of them lived in the valley.",
    "/docs/annual-report.txt": "According to the annual report, the Halden mill employed 410 workers in 2019.",
    "/docs/press.txt": "The Halden mill employed 340 workers in 2019, the press office said.",
    "/docs/other-mill.txt": "The Brenna mill employed 95 workers in 2019.",
}


def _ask_over(embedder, answerer: ExtractiveAnswerer, docs: dict[str, str], question: str) -> Answer:
    chunks = chunks_of(docs)
    ans = answerer.answer(question, retrieve(embedder, chunks, question, k=len(chunks)))
    for c in ans.citations:
        assert docs[c.source][c.start : c.end] == c.text
    return ans


def test_two_sources_with_different_values_are_both_cited(embedder, answerer: ExtractiveAnswerer) -> None:
    from rag.extractive import NOTE_CONFLICT

    docs = {k: RIVALS[k] for k in ("/docs/census-2019.txt", "/docs/annual-report.txt")}
    ans = _ask_over(embedder, answerer, docs, "How many workers did the Halden mill employ in 2019?")
    assert not ans.abstained and NOTE_CONFLICT in ans.notes
    assert ans.short_answer is None, "no single short answer when the sources disagree"
    assert {c.source for c in ans.citations} == set(docs)
    assert ans.answer.startswith("The documents disagree: ") and "340" in ans.answer and "410" in ans.answer
    # each value is quoted with its source, and the support check reads both claims as supported
    from evals.runner import SupportJudge

    rows, (supported, total) = SupportJudge(embedder).judge(ans.answer, ans.citations)
    assert total == 2 and supported == 2, rows


def test_sources_that_agree_or_speak_of_something_else_are_no_conflict(embedder,
                                                                          answerer: ExtractiveAnswerer) -> None:
    from rag.extractive import NOTE_CONFLICT

    agree = {k: RIVALS[k] for k in ("/docs/census-2019.txt", "/docs/press.txt")}
    ans = _ask_over(embedder, answerer, agree, "How many workers did the Halden mill employ in 2019?")
    assert NOTE_CONFLICT not in ans.notes and ans.short_answer == "340"
    other = {k: RIVALS[k] for k in ("/docs/census-2019.txt", "/docs/other-mill.txt")}
    ans = _ask_over(embedder, answerer, other, "How many workers did the Halden mill employ in 2019?")
    assert NOTE_CONFLICT not in ans.notes and ans.short_answer == "340", "the Brenna mill is another mill"


def test_a_follow_up_with_its_own_question_is_answered_about_its_own_words(embedder, tmp_path: Path) -> None:
    """The chat case of issue 14: "What file formats can citeqa read?" then "and what happens with a scanned
    PDF?" gave the first answer again; the follow-up is now answered as asked alone."""
    from ingest.compose import Citeqa
    from rag.settings import load_settings

    repo = Path(__file__).resolve().parents[2]
    qa = Citeqa(load_settings(collection="follow-ups", data_dir=tmp_path / "data"), embedder=embedder)
    assert qa.ingest([repo / "docs"], progress=False).ok
    first = qa.ask("What file formats can citeqa read?")
    history = [Turn("What file formats can citeqa read?", first.answer)]
    follow = qa.ask("and what happens with a scanned PDF?", history=history)
    alone = qa.ask("What happens with a scanned PDF?")
    spans = [(c.source, c.start, c.end) for c in follow.citations]
    assert follow.answer != first.answer and spans == [(c.source, c.start, c.end) for c in alone.citations]
    assert "scanned PDF" in follow.citations[0].text



TITLED = {
    "/docs/brannfjell.txt": "Brannfjell Glacier\n\nThe Brannfjell Glacier flows from the Kvit plateau into the Weddell "
                            "Sea. Surveyors first mapped it in 1958.",
    "/docs/kvit.txt": "Kvit Plateau\n\nThe Kvit plateau is an ice plateau of Queen Maud Land, about 2,400 metres high.",
}


def test_a_documents_title_is_never_the_quote(embedder, answerer: ExtractiveAnswerer) -> None:
    """A document's first line that reads as a heading names what follows and states nothing: quoted, it answers
    nothing ("What is the Kvit Plateau?" -> "Kvit Plateau"). The statement under it is quoted instead."""
    ans = _ask_over(embedder, answerer, TITLED, "What is the Kvit Plateau?")
    assert not ans.abstained and "ice plateau of Queen Maud Land" in ans.citations[0].text
    ans = _ask_over(embedder, answerer, TITLED, "When was the Brannfjell Glacier first mapped?")
    assert ans.short_answer == "1958"
    assert all(c.text not in ("Brannfjell Glacier", "Kvit Plateau") for c in ans.citations), ans.citations
