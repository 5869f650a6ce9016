"""``--llm local`` end to end against the real model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, assembled once from its
PyPI parts into the cache (rag.local_model) and run in process by llama.cpp (AMX-safe ``load_llama``).

The assertions are behaviours this model shows reliably at temperature 0 on short prompts: a cited answer whose
``[n]`` names the passage that holds the fact, "I could not find this" when the passages do not hold it, tokens
streamed one by one, and a follow-up rewritten into a standalone question. Each test loads the model in a child
process of its own (``isolated``); answers are bounded to 96 tokens to stay quick on 2 cores.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rag.citations import strip_markers
from rag.generative import NOTE_FALLBACK, NOTE_MODEL_ABSTAINED, NOTE_NOT_ASKED
from rag.settings import Settings, load_settings
from rag.types import Answer, Hit, Turn
from tests.integration.test_llm_backends import DOC, QUESTION, make_hits

pytestmark = [pytest.mark.integration, pytest.mark.llm]

MAX_TOKENS = 96


@pytest.fixture(scope="module")
def local_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings for ``--llm local`` (a data dir of their own: a module fixture is built before the per-test one is
    set); skips (with the install line) when llama.cpp or the parts are missing."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'citeqa[local]'")
    from rag.errors import BackendError
    from rag.local_model import find_parts

    try:
        find_parts()
    except BackendError as err:
        pytest.skip(str(err))
    return load_settings(llm="local", llm_max_tokens=MAX_TOKENS, llm_timeout=120,
                         data_dir=tmp_path_factory.mktemp("citeqa-data"))


@pytest.fixture(scope="module")
def local(local_settings: Settings, embedder):
    from rag.llm import make_answerer

    t0 = time.perf_counter()
    answerer = make_answerer(local_settings, embedder)
    print(f"\nlocal model ready in {time.perf_counter() - t0:.2f} s")
    return answerer


def _passage_with(hits: list[Hit], text: str) -> int:
    """The 1-based number of the passage (as numbered in the prompt) that contains ``text``."""
    return next(i for i, h in enumerate(hits, 1) if text in h.chunk.text)


@pytest.mark.isolated  # llama.cpp in this process: a crash fails this test alone
def test_cited_answer_names_the_passage_that_holds_the_fact_and_streams(local, tmp_path: Path, embedder) -> None:
    hits, doc = make_hits(tmp_path, embedder)
    t0 = time.perf_counter()
    ans = local.answer(QUESTION, hits)
    elapsed = time.perf_counter() - t0
    print(f"\nlocal: {elapsed:.2f} s, timings {ans.timings}, answer {ans.answer!r}")
    assert not ans.abstained and ans.backend == "local"
    assert NOTE_FALLBACK not in ans.notes, f"the model's own markers: {ans.answer!r} {ans.notes}"
    assert "71" in ans.answer
    assert ans.citations and "[1]" in ans.answer
    for c in ans.citations:
        assert doc[c.start : c.end] == c.text, "a citation is an exact span of the document"
        assert f"[{c.n}]" in ans.answer
    holding = hits[_passage_with(hits, "minus 71") - 1].chunk
    first = ans.citations[0]
    assert first.chunk_id == holding.id, "[1] is the passage that holds the fact"
    assert "minus 71" in first.text and first.supported is True
    assert not ans.unsupported_sentences, ans.unsupported_sentences

    # the same question streamed: text pieces as they are generated, then the same Answer
    parts = list(local.stream(QUESTION, hits))
    final, pieces = parts[-1], parts[:-1]
    assert isinstance(final, Answer) and all(isinstance(p, str) and p for p in pieces)
    assert len(pieces) >= 5, "tokens arrive one by one"
    assert strip_markers("".join(pieces)).strip() == strip_markers(final.answer).strip()
    assert final.answer == ans.answer and final.citations == ans.citations, "temperature 0: the same answer"
    assert 0 < final.timings["first_token"] < final.timings["generate"]
    print(f"local stream: first token {final.timings['first_token']:.0f} ms (prompt cached), whole answer "
          f"{final.timings['generate']:.0f} ms, {len(pieces)} pieces")


@pytest.mark.isolated
def test_the_model_abstains_when_the_passages_do_not_hold_the_answer(local, tmp_path: Path, embedder) -> None:
    question = "Who was the first doctor at Halvorsen Station?"  # on topic (so the model is asked), not answered
    hits, _ = make_hits(tmp_path, embedder, question)
    ans = local.answer(question, hits)
    print(f"\nlocal: {ans.answer!r} {ans.notes}")
    assert NOTE_NOT_ASKED not in ans.notes, "relevant enough passages: the model is asked"
    assert ans.abstained and NOTE_MODEL_ABSTAINED in ans.notes
    assert not ans.citations
    # a question of another shape the passages do not answer: this 1.5B model often invents an amount; then the
    # support check flags every sentence of it (the number is in no passage), so nothing invented passes as backed
    question = "How much does the station cost to run each year?"
    hits, _ = make_hits(tmp_path, embedder, question)
    ans = local.answer(question, hits)
    print(f"\nlocal: {ans.answer!r} {ans.notes} unsupported={ans.unsupported_sentences}")
    if not ans.abstained:
        assert ans.unsupported_sentences and not any(c.supported for c in ans.citations), ans
    # irrelevant retrieval: the model is not asked at all
    off = "Which football club won the 1998 cup final in Lisbon?"
    low = [Hit(h.chunk, score=0.01, dense_score=0.01, rank=h.rank) for h in hits]
    ans = local.answer(off, low)
    assert ans.abstained and NOTE_NOT_ASKED in ans.notes


@pytest.mark.isolated
def test_a_follow_up_is_rewritten_into_a_standalone_question(
    local, local_settings: Settings, embedder, tmp_path: Path
) -> None:
    opened = "It was opened in 1961 by the Norwegian Polar Institute [1]."
    history = (Turn("When was Halvorsen Station opened?", opened),)
    follow_up = "and how many scientists live there in winter?"
    out = local.rewrite(follow_up, history)
    print(f"\nlocal rewrite: {out!r}")
    assert out != follow_up
    low = out.lower()
    assert "halvorsen" in low, "the subject of the conversation is filled in"
    assert "winter" in low and "scientist" in low, "the follow-up's own question is kept"
    assert out.rstrip().endswith("?") and "\n" not in out

    # through the pipeline: ask() with a conversation is rewritten by the model, retrieved, answered and cited
    from ingest.compose import Citeqa

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "halvorsen.txt").write_text(DOC, encoding="utf-8")
    s = local_settings.model_copy(update={"collection": "local-follow-up"})
    qa = Citeqa(s, embedder=embedder)
    qa.ingest([docs], progress=False)
    history = [Turn("When was Halvorsen Station opened?", "It was opened in 1961 [1].")]
    ans = qa.ask("and what was the coldest temperature measured there?", history=history)
    print(f"\nlocal pipeline: {ans.standalone_question!r} -> {ans.answer!r} {ans.timings}")
    assert ans.standalone_question and "halvorsen" in ans.standalone_question.lower()
    assert not ans.abstained and "71" in ans.answer and ans.citations
    text = (docs / "halvorsen.txt").read_text(encoding="utf-8")
    assert all(text[c.start : c.end] == c.text for c in ans.citations)


@pytest.mark.isolated
def test_the_verifier_tells_evidence_that_answers_from_evidence_that_does_not(local_settings: Settings) -> None:
    """The judgement behind --verify local: P(yes) that the sentences state the answer to this exact question."""
    from rag.llm import make_verifier
    from rag.verify import Judgement

    verifier = make_verifier(local_settings.model_copy(update={"verify": "local"}))
    opened = ["It was opened in 1961 by the Norwegian Polar Institute."]
    cases = [
        ("When was Halvorsen Station opened?", opened, True),
        ("Who opened Halvorsen Station?", opened, True),
        ("Who was the first doctor at Halvorsen Station?", opened, False),  # on topic, not stated
        ("How much did it cost to build Halvorsen Station?", opened, False),
    ]
    judged = [(q, verifier.judge(q, ev)) for q, ev, _ in cases]
    for q, j in judged:
        print(f"\nverifier: P(yes) {j.p_yes:.3f} in {j.ms:.0f} ms ({j.prompt_tokens} tokens): {q}")
        assert isinstance(j, Judgement) and 0.0 <= j.p_yes <= 1.0
    yes = [j.p_yes for (_, j), (_, _, ok) in zip(judged, cases, strict=True) if ok]
    no = [j.p_yes for (_, j), (_, _, ok) in zip(judged, cases, strict=True) if not ok]
    assert min(yes) > max(no), "every answering pair scores above every non-answering one"
    assert min(yes) >= local_settings.verify_threshold > max(no), "and the shipped threshold splits them"


@pytest.mark.isolated  # llama.cpp in this process: a crash fails this test alone
def test_the_verifier_tells_a_claim_its_passage_states_from_the_same_claim_with_a_fact_swapped(
    local_settings: Settings,
) -> None:
    """The claim judgement (``judge_claim``): P(yes) that the passage states what the sentence says, higher for
    each true claim than for its twin with a year, a name or a month swapped."""
    from rag.llm import make_verifier

    verifier = make_verifier(local_settings.model_copy(update={"verify": "local"}))
    passage = ["It was opened in 1961 by the Norwegian Polar Institute. The coldest temperature measured there was "
               "-48.2 C in July 1987."]
    twins = [("Halvorsen Station was opened in 1961.", "Halvorsen Station was opened in 1971."),
             ("The Norwegian Polar Institute opened the station.", "The Swedish Polar Institute opened the station."),
             ("The coldest temperature was measured in July 1987.",
              "The coldest temperature was measured in August 1987.")]
    for true, swapped in twins:
        yes, no = verifier.judge_claim(true, passage), verifier.judge_claim(swapped, passage)
        print(f"\nclaim judge: {yes.p_yes:.3f} {true!r} / {no.p_yes:.3f} {swapped!r} ({yes.ms:.0f} ms)")
        assert yes.p_yes > 0.5 > no.p_yes, (true, yes.p_yes, swapped, no.p_yes)


@pytest.mark.isolated
def test_verify_local_withholds_an_extractive_answer_the_evidence_does_not_give(
    local_settings: Settings, embedder, tmp_path: Path
) -> None:
    from rag.llm import make_answerer
    from rag.verify import NOTE_JUDGED_NO, VerifiedAnswerer

    s = local_settings.model_copy(update={"verify": "local", "llm": "extractive"})
    answerer = make_answerer(s, embedder)
    assert isinstance(answerer, VerifiedAnswerer)
    hits, _ = make_hits(tmp_path, embedder, "When was Halvorsen Station opened?")
    ans = answerer.answer("When was Halvorsen Station opened?", hits)
    print(f"\nverified: {ans.answer!r} {ans.notes} {ans.timings}")
    assert not ans.abstained and "1961" in ans.answer and ans.citations and ans.timings["verify"] > 0
    # questions the extractive answerer alone answers wrongly ("Brannfjell", "August 1987"): the judgement
    # withholds them
    for question in ("Who was the first doctor at Halvorsen Station?", "When was Halvorsen Station closed?",
                     "What was the warmest temperature measured at Halvorsen Station?"):
        hits, _ = make_hits(tmp_path, embedder, question)
        plain = answerer.inner.answer(question, hits)
        ans = answerer.answer(question, hits)
        print(f"\nverified: {question} {plain.answer[:60]!r} -> {ans.answer!r} {ans.notes}")
        assert not plain.abstained, "the extractive answerer alone answers it"
        assert ans.abstained and not ans.citations and ans.short_answer is None
        assert any(n.startswith(NOTE_JUDGED_NO.split(" (")[0]) for n in ans.notes), ans.notes


@pytest.mark.isolated
def test_the_second_hop_follows_the_bridge_entity(local, embedder, tmp_path: Path) -> None:
    """A question whose answer needs a second passage: the first holds the bridge (the director), the model
    names what to look up, the second search finds the director's birthplace, and the answer cites it."""
    from rag.types import Chunk

    film = "Northern Lights is a 1994 Norwegian drama film. It was directed by Ingrid Solberg and shot in Alta."
    person = "Ingrid Solberg is a Norwegian film director. She was born in Tromsø in 1962 and studied in Oslo."
    other = "The Alta river is known for its salmon. The town of Alta lies at the head of the Altafjord."
    docs = {"film.txt": film, "solberg.txt": person, "alta.txt": other}
    chunks = {name: Chunk(f"{name}#0", str(tmp_path / name), text, 0, len(text), index=0)
              for name, text in docs.items()}
    searched: list[str] = []

    def retrieve(query: str, k: int) -> list[Hit]:
        searched.append(query)
        vecs = embedder.embed([query, *docs.values()])
        order = sorted(zip(vecs[1:] @ vecs[0], chunks.values(), strict=True), key=lambda x: -x[0])
        return [Hit(c, float(s), dense_score=float(s), rank=i) for i, (s, c) in enumerate(order[:k], 1)]

    question = "In which city was the director of Northern Lights born?"
    first = [Hit(chunks["film.txt"], 0.8, dense_score=0.8, rank=1),
             Hit(chunks["alta.txt"], 0.5, dense_score=0.5, rank=2)]
    old = local.retrieve, local.hop_first
    local.retrieve, local.hop_first = retrieve, True  # the bridge-first mode: a chained question hops first
    try:
        ans = local.answer(question, first)
    finally:
        local.retrieve, local.hop_first = old
    print(f"\nlocal hop: searched {searched} -> {ans.answer!r} {ans.notes} {ans.timings}")
    assert len(searched) == 1 and "solberg" in searched[0].lower(), "the model names the bridge entity"
    assert not ans.abstained and "Tromsø" in ans.answer
    assert any(c.chunk_id == "solberg.txt#0" and "Tromsø" in c.text for c in ans.citations)
