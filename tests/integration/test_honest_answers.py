"""Honest answers from the extractive answerer (issue 14), on hand-made documents with the real embedder and the
real spaCy pipeline: evidence that answers the question rather than evidence near it, short answers only when
they are whole, and follow-ups answered about their own words."""

from __future__ import annotations

import pytest

from rag.answer_check import asked, counting_value, evidence_gap, missing_terms
from rag.extractive import ExtractiveAnswerer
from rag.nlp import Analyzer
from rag.short_answers import question_type
from rag.types import Answer, Chunk, Turn
from rag.whole_answers import whole_answer
from tests.integration.test_extractive import chunks_of, retrieve

pytestmark = pytest.mark.integration

ACME = {
    "/docs/acme-2017.txt": "Acme Corp employed 340 workers in 2017. The company had 12 offices in three countries.",
    "/docs/acme-board.txt": "The board of Acme Corp meets every March in Marbury. The board approves the budget "
    "and the annual report.",
    "/docs/acme-offices.txt": "The Paris office of Acme Corp opened in 2015. The Berlin office was led by Maria "
    "Keller for ten years.",
    "/docs/acme-2018.txt": "In 2018 Acme Corp employed 410 workers after it bought the Halden mill.",
    "/docs/acme-pdf.txt": "Acme Corp publishes its annual report as a PDF file. A scanned PDF has no text layer, so "
    "the reader reports it and skips it.",
}


@pytest.fixture(scope="module")
def analyzer() -> Analyzer:
    return Analyzer()


def _asker(embedder, analyzer: Analyzer, docs: dict[str, str], k: int):
    """Ask ``docs`` (one chunk each, the best ``k`` retrieved) through a real ExtractiveAnswerer; every citation
    must be the exact span of its document."""
    answerer = ExtractiveAnswerer(embedder, analyzer=analyzer)
    chunks = chunks_of(docs)

    def _ask(question: str, history: tuple[Turn, ...] = ()) -> Answer:
        from rag.extractive import contextualize

        ans = answerer.answer(question, retrieve(embedder, chunks, contextualize(question, history), k=k), history)
        for c in ans.citations:
            assert docs[c.source][c.start : c.end] == c.text
        return ans

    return _ask


@pytest.fixture(scope="module")
def acme(embedder, analyzer: Analyzer):
    return _asker(embedder, analyzer, ACME, k=3)


# -- evidence that answers the question --------------------------------------------------------------------------


def test_answers_when_the_sentence_holds_what_is_asked(acme) -> None:
    ans = acme("How many workers did Acme Corp employ in 2017?")
    assert not ans.abstained and ans.short_answer == "340"
    ans = acme("When did the Paris office open?")
    assert not ans.abstained and ans.short_answer == "2015"


def test_another_year_is_not_answered_with_the_sentence_about_this_one(acme) -> None:
    ans = acme("How many workers did Acme Corp employ in 2019?")
    assert ans.abstained and ans.citations == () and ans.short_answer is None
    assert any('"2019"' in n for n in ans.notes), ans.notes  # it says what was missing


def test_a_quantity_of_another_thing_is_no_answer(acme) -> None:
    """'how many employees' needs employees (or workers), not offices."""
    ans = acme("How many shareholders does Acme Corp have?")
    assert ans.abstained and any("shareholders" in n for n in ans.notes), ans.notes
    ans = acme("How many employees did Acme Corp have in 2017?")  # "workers" means the same
    assert not ans.abstained and ans.short_answer == "340"


def test_a_type_mismatch_abstains_and_says_what_kind_was_missing(acme) -> None:
    """The documents mention the board, but not who chairs it."""
    ans = acme("Who chairs the board of Acme Corp?")
    assert ans.abstained and any("names no person" in n for n in ans.notes), ans.notes
    ans = acme("When did the Berlin office open?")  # the Berlin sentence has no date
    assert ans.abstained


def test_a_question_about_what_is_not_so_needs_a_sentence_that_says_so(acme) -> None:
    """"What does the board not approve?" is not answered by what the board approves; a sentence that states a
    negation answers it, and "whether or not" asks nothing negative."""
    ans = acme("What does the board of Acme Corp not approve?")
    assert ans.abstained and any("not so" in n for n in ans.notes), ans.notes
    ans = acme("What does the reader skip because it has no text layer?")  # no negation asked: answered
    assert not ans.abstained
    ans = acme("Which PDF file does the reader not read, having no text layer?")
    assert not ans.abstained and "scanned PDF" in ans.answer
    ans = acme("Whether or not it is scanned, in what format does Acme Corp publish its annual report?")
    assert not ans.abstained and "PDF" in ans.answer


def test_negated_reads_the_question_not_its_idioms() -> None:
    from rag.answer_check import negated

    assert negated("What cannot be solved by mechanical steps?")
    assert negated("Which office was never opened?") and negated("What doesn't the board approve?")
    assert not negated("Whether or not it rains, when does the ferry leave?")
    assert not negated("What is the output, yes or no?") and not negated("Is it not only fast but cheap?")


FERRY = {
    "/docs/ferry-rules.txt": "The harbour office wrote the ferry rules in 1911. A mechanical application of the "
    "ferry rules is what every new pilot learns first. Pilots also learn the tide tables by heart.",
    "/docs/ferry-fleet.txt": "The ferry fleet has a fixed set of winter routes. Each route is sailed twice a day. "
    "The two car ferries of the fleet carry lorries.",
    "/docs/ferry-ports.txt": "The busiest port of the fleet is Halden. The ferry sails north in winter. The most "
    "used route of the fleet runs to Marbury.",
}


@pytest.fixture(scope="module")
def ferry(embedder, analyzer: Analyzer):
    return _asker(embedder, analyzer, FERRY, k=2)


def test_the_asked_thing_qualified_otherwise_is_no_answer(ferry, analyzer: Analyzer) -> None:
    """SQuAD 2.0's twins swap the qualifier of a noun ("a manual application" over "a mechanical application"):
    the sentence that qualifies the noun otherwise, with no word near the question's qualifier, answers
    nothing, and the answerer says so rather than quoting another sentence that lacks the qualifier too."""
    ans = ferry("What is a mechanical application of the ferry rules?")
    assert not ans.abstained and "mechanical application" in ans.answer
    ans = ferry("What is a manual application of the ferry rules?")
    assert ans.abstained, ans.answer
    assert any("says mechanical application, not manual application" in n for n in ans.notes), ans.notes
    assert ferry("What does the ferry fleet have a fixed set of?").short_answer == "winter routes"
    ans = ferry("What does the ferry fleet have a flexible set of?")
    assert ans.abstained and any("says fixed set, not flexible set" in n for n in ans.notes), ans.notes


def test_a_sentence_that_says_the_opposite_is_no_answer(ferry) -> None:
    ans = ferry("Which port of the fleet is the busiest?")
    assert not ans.abstained and ans.short_answer == "Halden"
    ans = ferry("In which direction does the ferry sail in winter?")
    assert not ans.abstained and "north" in ans.answer
    ans = ferry("In which direction does the ferry sail after winter?")  # "after" is neither said nor opposed
    assert not ans.abstained
    from rag.answer_check import opposite

    q = "What is the least used type of reduction?"
    rival = opposite(asked(q, question_type(q)), "The most commonly used reduction is a polynomial-time reduction.")
    assert rival is not None and str(rival) == 'says "most", not "least"'
    assert opposite(asked(q, question_type(q)), "The least and the most used reductions are both listed.") is None
    q = "Which way does the ferry sail, north or south?"
    assert opposite(asked(q, question_type(q)), "The ferry sails north in winter.") is None  # both asked
    ans = ferry("Which place does the most used route of the fleet run to?")
    assert not ans.abstained and ans.short_answer == "Marbury", ans.answer
    ans = ferry("Which place does the least used route of the fleet run to?")
    assert ans.abstained and 'says "most", not "least"' in ans.notes[0], ans.notes


def test_another_count_of_the_asked_thing_is_no_answer(ferry) -> None:
    ans = ferry("What do the two car ferries of the fleet carry?")
    assert not ans.abstained and ans.short_answer == "lorries", ans.answer
    ans = ferry("What do the three car ferries of the fleet carry?")
    assert ans.abstained and "says two ferries, not three ferries" in ans.notes[0], ans.notes
    ans = ferry("What do the 2 car ferries of the fleet carry?")  # the same number in digits
    assert not ans.abstained


def test_id_is_a_word_not_a_contraction(analyzer: Analyzer) -> None:
    """spaCy's tokenizer reads "id" as "I'd" ("a collection i d"); the qualifier check needs the noun whole."""
    words = [w.text for w in analyzer.analyze(["Each chunk also gets a stable id of 32 characters."])[0].words]
    assert "id" in words and "d" not in words
    q = "How many characters make up a collection id?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert ("collection", "id") in a.qualified


def test_qualifiers_are_the_words_that_qualify_a_common_noun(analyzer: Analyzer) -> None:
    from rag.answer_check import qualifiers

    def of(q: str) -> tuple[tuple[str, str], ...]:
        return asked(q, question_type(q), analyzer.analyze([q])[0]).qualified

    assert of("What can be viewed as a limited collection of instances?") == (("limited", "collection"),)
    assert of("How many other routes does the ferry fleet have?") == (("ferry", "fleet"),)  # counts, orders: no
    assert of("What role did they play in their respective bands?") == ()
    assert of("Who sang in the band Counting Crows?") == ()  # a name's qualifier: names are checked as names
    assert qualifiers(analyzer.analyze(["Which Halden mill was sold?"])[0], ("Halden",)) == ()


def test_an_entity_the_text_does_not_mention_abstains(acme) -> None:
    ans = acme("When did the Madrid office of Acme Corp open?")
    assert ans.abstained and any('"Madrid"' in n for n in ans.notes), ans.notes


def test_missing_terms_reads_names_numbers_and_the_counted_thing(analyzer: Analyzer) -> None:
    q = "How many troops did Herve send in 1060?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert a.names == ("Herve",) and a.numbers == ("1060",) and a.counted == "troops"
    assert missing_terms(a, "In 1060 Hervé sent 300 troops.") == []  # accents do not matter
    assert missing_terms(a, "In 1062 Hervé sent 300 ships.") == ["1060", "troops"]
    q = "How many combinatory problems did Karp's paper address?"
    assert asked(q, question_type(q), analyzer.analyze([q])[0]).counted == "problems"  # the noun, not the adjective


def test_a_name_with_a_capital_inside_is_a_name_the_sentence_must_hold(acme, analyzer: Analyzer) -> None:
    q = "Where does the Acme Corp office on macOS keep its files?"
    assert "macOS" in asked(q, question_type(q), analyzer.analyze([q])[0]).names
    ans = acme("Which file format does Acme Corp publish its annual report in on iPhone?")
    assert ans.abstained and any('"iPhone"' in n for n in ans.notes), ans.notes
    assert not acme("Which file format does Acme Corp publish its annual report in?").abstained


def test_how_much_more_counts_the_noun_after_it(analyzer: Analyzer) -> None:
    q = "How much less memory does the int8 embedder use?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert a.counted == "memory"
    assert missing_terms(a, "Both embedders produce vectors with 384 dimensions.") == ["memory"]
    q = "How many more workers did Acme Corp employ in 2018?"
    assert asked(q, question_type(q), analyzer.analyze([q])[0]).counted == "workers"


def test_evidence_gap_of_a_sentence(analyzer: Analyzer) -> None:
    q = "Who founded the Halden mill?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert evidence_gap(a, analyzer.analyze(["The Halden mill was founded by Ole Brandt in 1851."])[0]) is None
    gap = evidence_gap(a, analyzer.analyze(["The Halden mill was founded in 1851 on the river."])[0])
    assert gap == "names no person or organisation"


def test_a_number_that_counts_another_thing_is_no_count(embedder, analyzer: Analyzer) -> None:
    """'How many collections' is not answered by "two ingests of a collection": the number counts ingests."""
    similar = ExtractiveAnswerer(embedder, analyzer=analyzer)._similar
    q = "How many collections can citeqa ingest at once?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    other = analyzer.analyze(["The lock keeps two ingests of a collection from running at once."])[0]
    assert evidence_gap(a, other, similar=similar) == "names no number of collections"
    same = analyzer.analyze(["citeqa can ingest three collections at once."])[0]
    assert evidence_gap(a, same, similar=similar) is None
    bare_number = analyzer.analyze(["The number of collections citeqa ingests at once is 4."])[0]
    assert evidence_gap(a, bare_number, similar=similar) is None  # a number that counts no noun may be the answer
    q = "How many employees did Acme Corp have in 2017?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    synonym = analyzer.analyze(["Acme Corp employed 340 workers in 2017."])[0]
    assert evidence_gap(a, synonym, similar=similar) is None  # workers mean employees


def test_the_short_answer_counts_the_asked_thing(embedder, analyzer: Analyzer) -> None:
    """Of "6 layers" and "384 dimensions" the answer to "how many layers" is 6, though the question's model name
    holds a 6 ("L6" is no number the question asks about)."""
    similar = ExtractiveAnswerer(embedder, analyzer=analyzer)._similar
    q = "How many layers does the all-MiniLM-L6-v2 model have?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    s = analyzer.analyze(["It is embedded with all-MiniLM-L6-v2, a model with 6 layers that maps every text to a "
                          "vector of 384 dimensions."])[0]
    v = counting_value(a, s, similar)
    assert v is not None and v.text == "6"
    chunk = Chunk("/docs/model.txt#0", "/docs/model.txt", s.text, 0, len(s.text), index=0)
    ans = ExtractiveAnswerer(embedder, analyzer=analyzer).answer(q, retrieve(embedder, [chunk], q, k=1))
    assert not ans.abstained and ans.short_answer == "6"


# -- short answers only when whole -------------------------------------------------------------------------------


def _whole(analyzer: Analyzer, question: str, sentence: str, piece: str) -> str | None:
    a = asked(question, question_type(question), analyzer.analyze([question])[0])
    start = sentence.index(piece)
    span = whole_answer(a, analyzer.analyze([sentence])[0], start, start + len(piece))
    return sentence[span[0] : span[1]] if span else None


@pytest.mark.parametrize(
    "question, sentence, piece, expected",
    [
        # a fragment cut out of a phrase is refused
        ("What is the default chunk overlap?", "It must be at least 0 and smaller than the chunk size.",
         "least 0 and smaller", None),
        ("What was one of the Norman's major exports?", "Most Norman knights remained poor and land-hungry.",
         "knights remained poor and land", None),
        ("What branch of computer science deals with problems?", "It is a branch that focuses on problems.",
         "focuses", None),
        # a cut name, number or code span is widened to the whole one
        ("Who led the papal army?", "In 1064 William of Montreuil led the papal army.", "William of Montreuil",
         "William of Montreuil"),
        ("How many sentences does an answer quote?", "An answer quotes at most two sentences.", "at most two",
         "at most two"),
        ("Which option sets a threshold?", "The `--fail-under` option sets a threshold.", "fail", "--fail-under"),
        ("When did Robert Crispin fight the Turks?", "In the 1060s, Robert Crispin led the Normans.", "1060",
         "1060s"),
    ],
)
def test_short_answer_is_a_whole_constituent(analyzer: Analyzer, question: str, sentence: str, piece: str,
                                             expected: str | None) -> None:
    assert _whole(analyzer, question, sentence, piece) == expected


def test_no_short_answer_rather_than_a_fragment(embedder, analyzer: Analyzer) -> None:
    text = "The chunk overlap must be at least 0 and smaller than the chunk size, which is 128 word pieces."
    chunks = [Chunk("/docs/c.txt#0", "/docs/c.txt", text, 0, len(text), index=0)]
    ans = ExtractiveAnswerer(embedder, analyzer=analyzer).answer(
        "What is the chunk overlap?", retrieve(embedder, chunks, "What is the chunk overlap?", k=1))
    assert not ans.abstained
    whole = {e.text for e in analyzer.analyze([text])[0].entities} | {"at least 0", "128 word pieces"}
    assert ans.short_answer is None or ans.short_answer in whole, ans.short_answer  # never "least 0 and smaller"


@pytest.mark.parametrize(("question", "sentence", "start", "bare"), [
    # a modifier of the very thing asked about is no name for it
    ("What was the naval base called?", "Dyrrachium was its most important naval base.", "most important", True),
    ("What are complexity classes generally classified into?", "A typical complexity class has a definition.",
     "typical", True),
    # ... but it answers "what type of X?" when X follows it
    ("A multi-tape Turing machine requires what type of time?", "It runs in linear time.", "linear", False),
    ("What kind of graph is an example of an input?", "The input is an arbitrary graph.", "arbitrary", False),
    ("What was the naval base called?", "Dyrrachium was its most important naval base.", "Dyrrachium", False),
    # what is left of a pair once the question's own half is trimmed is a fragment
    ("Which chain was founded first?", "It trails Pizza Hut and Domino's Pizza.", "and Domino", True),
    ("Who founded the Halden mill?", "The mill was founded by Ole Brandt and Maria Keller.", "Ole Brandt and", False),
])
def test_a_bare_modifier_is_no_short_answer(analyzer: Analyzer, question: str, sentence: str, start: str,
                                            bare: bool) -> None:
    from rag.whole_answers import bare_modifier

    (an,) = analyzer.analyze([sentence])
    a = asked(question, question_type(question), an)
    i = sentence.index(start)
    assert bare_modifier(a, an, i, i + len(start)) is bare


def test_the_quote_stands_alone_rather_than_a_modifier_in_bold(embedder, analyzer: Analyzer) -> None:
    text = "Robert Guiscard took Dyrrachium, the most important naval base of the Byzantine Empire, in 1082."
    chunks = [Chunk("/docs/d.txt#0", "/docs/d.txt", text, 0, len(text), index=0)]
    question = "What was the naval base called?"
    ans = ExtractiveAnswerer(embedder, analyzer=analyzer).answer(question, retrieve(embedder, chunks, question, k=1))
    assert not ans.abstained and ans.short_answer not in ("most important", "important"), ans.short_answer


# -- follow-ups that follow --------------------------------------------------------------------------------------


def test_follow_up_and_in_another_year(acme) -> None:
    first = acme("How many workers did Acme Corp employ in 2017?")
    ans = acme("and in 2018?", (Turn("How many workers did Acme Corp employ in 2017?", first.answer),))
    assert ans.short_answer == "410" and ans.standalone_question
    ans = acme("and in 2021?", (Turn("How many workers did Acme Corp employ in 2017?", first.answer),))
    assert ans.abstained, "the follow-up's own year is what must be in the evidence"


def test_follow_up_what_about_another_thing(acme) -> None:
    first = acme("When did the Paris office open?")
    history = (Turn("When did the Paris office open?", first.answer),)
    ans = acme("what about the Berlin office?", history)
    assert ans.abstained, "the Berlin office has no opening date: not the Paris answer again"
    ans = acme("what about the Madrid office?", history)
    assert ans.abstained


def test_follow_up_and_what_happens_with(acme) -> None:
    first = acme("How does Acme Corp publish its annual report?")
    ans = acme("and what happens with a scanned PDF?", (Turn("How does Acme Corp publish its annual report?",
                                                                first.answer),))
    assert not ans.abstained and "scanned PDF" in ans.citations[0].text
    assert ans.answer != first.answer


def test_follow_up_who_led_it(acme) -> None:
    first = acme("Where was the Berlin office of Acme Corp?")
    ans = acme("who led it?", (Turn("Where was the Berlin office of Acme Corp?", first.answer),))
    assert not ans.abstained and ans.short_answer == "Maria Keller"


# -- questions that need two passages, comparisons, how/why ------------------------------------------------------


def test_a_question_that_needs_two_passages_is_answered_through_the_bridge(embedder, analyzer: Analyzer) -> None:
    """The names the answer sentence lacks are in another passage that shares the bridge entity with it."""
    docs = {
        "/docs/film.txt": "Maximum Overdrive is a 1986 horror film. It was shot in and around Leland, North Carolina.",
        "/docs/director.txt": "Maximum Overdrive was written and directed by Stephen King, his only film as director.",
    }
    chunks = chunks_of(docs)
    q = "Who directed the film that was shot in Leland, North Carolina in 1986?"
    ans = ExtractiveAnswerer(embedder, analyzer=analyzer).answer(q, retrieve(embedder, chunks, q, k=2))
    assert not ans.abstained and ans.short_answer == "Stephen King"


def test_one_of_the_compared_names_is_enough(analyzer: Analyzer) -> None:
    q = "Which band was formed first, The Exies or Circus Diablo?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert a.compares and missing_terms(a, "The Exies are a rock band formed in 1997 in Los Angeles.") == []
    q = "When did Herve and Robert fight the Turks?"  # no comparison: both must be there
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert not a.compares and missing_terms(a, "In 1060 Robert fought the Turks.") == ["Herve"]


def test_numbers_written_as_texts_write_years(analyzer: Analyzer) -> None:
    q = "What author was more popular in the 70's, Richard Wright or Richard Bach?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert "70" not in missing_terms(a, "Richard Bach was a best-selling author in the 1970s.")
    q = "Who missed the 2003-2004 season?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert missing_terms(a, "He missed the entire 2003–04 season.") == []


def test_a_how_question_has_no_short_answer(acme) -> None:
    ans = acme("How does Acme Corp publish its annual report?")
    assert not ans.abstained and ans.short_answer is None and "PDF" in ans.citations[0].text


def test_a_choice_between_the_questions_names_needs_no_other_name(analyzer: Analyzer) -> None:
    """"Who is older, X or Y?" is answered by one of its own names: the sentence need not name a third person."""
    q = "Who is older, Ole Brandt or Maria Keller?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert evidence_gap(a, analyzer.analyze(["Ole Brandt was born in 1851 and Maria Keller in 1902."])[0]) is None
    q = "Who founded the Halden mill, Ole Brandt or Maria Keller?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert evidence_gap(a, analyzer.analyze(["The Halden mill was founded in 1851."])[0]) is not None  # names neither


def test_a_decade_is_mentioned_by_any_of_its_years(analyzer: Analyzer) -> None:
    q = "Which mill was founded in the 1850s?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert missing_terms(a, "The Halden mill was founded in 1851.") == []
    assert missing_terms(a, "The Halden mill was founded in 1861.") == ["1850"]


def test_a_common_noun_for_people_answers_who(analyzer: Analyzer) -> None:
    """"Who is it built for?" is answered by "people who ...", though no person is named; a thing is no answer."""
    q = "Who is the Halden mill built for?"
    a = asked(q, question_type(q), analyzer.analyze([q])[0])
    assert evidence_gap(a, analyzer.analyze(["The Halden mill is built for people who grind grain."])[0]) is None
    gap = evidence_gap(a, analyzer.analyze(["The Halden mill is built for grinding grain."])[0])
    assert gap == "names no person or organisation"
