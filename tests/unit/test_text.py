"""rag.text gives exactly what the three lexical analyzers it replaced gave (BM25 in rag/bm25.py, the support
check in rag/support.py, the extractive answerer in rag/extractive.py): the same tokens, stop words and stems,
so BM25 scores, support decisions and answers do not move.

The expected values in ``data/text_analysis.json`` were recorded from the old code, once, by
``data/make_text_analysis.py``: lines of docs/*.md and tricky cases (2,000 / 3.5 / 3.11.7 / 10.0.0.1, hyphens,
apostrophes, unicode, capitalised names), and every word they contain plus the irregular forms.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import text
from rag.bm25 import document_title, title_key, tokenize
from rag.extractive import _is_elliptic, _value, question_names
from rag.support import STOPWORDS, content_words, names, numbers
from rag.support import tokens as support_tokens

FIXTURE = json.loads((Path(__file__).parent / "data" / "text_analysis.json").read_text(encoding="utf-8"))
TEXTS = FIXTURE["texts"]
WORDS = [dict(zip(FIXTURE["word_fields"], row, strict=True)) for row in FIXTURE["words"]]


def test_the_sample_is_varied() -> None:
    joined = "\n".join(r["text"] for r in TEXTS)
    for case in ("2,000", "3.5", "3.11.7", "10.0.0.1", "state-of-the-art", "O'Neill's", "don’t", "Straße", "Obama"):
        assert case in joined
    assert len(TEXTS) > 100 and len(WORDS) > 1000


def test_word_lists_are_the_old_ones() -> None:
    assert sorted(text.INDEX_STOPWORDS) == FIXTURE["bm25_stopwords"]
    assert sorted(text.CLAIM_STOPWORDS) == FIXTURE["support_stopwords"]
    assert STOPWORDS is text.CLAIM_STOPWORDS
    assert text.IRREGULAR == FIXTURE["irregular"]
    assert text.NUMBER_WORDS == FIXTURE["number_words"]


@pytest.mark.parametrize("row", TEXTS, ids=range(len(TEXTS)))
def test_index_analysis(row: dict) -> None:
    t = row["text"]
    assert text.index_raw_tokens(t) == row["bm25_raw"]
    assert text.index_tokens(t) == tokenize(t) == row["bm25_tokenize"]
    assert text.folded_words(t) == row["bm25_link_words"]
    assert text.plain_words(t) == row["words"]
    key = title_key(t)
    assert (list(key) if key is not None else None) == row["bm25_title_key"]
    assert document_title(t, "/data/q3_report-final.md") == row["bm25_document_title"]


@pytest.mark.parametrize("row", TEXTS, ids=range(len(TEXTS)))
def test_claim_analysis(row: dict) -> None:
    t = row["text"]
    assert text.claim_tokens(t) == support_tokens(t) == row["support_tokens"]
    assert text.content_words(t) == content_words(t) == row["support_content_words"]
    assert sorted(names(t)) == row["support_names"]
    assert sorted(numbers(t)) == row["support_numbers"]


@pytest.mark.parametrize("row", TEXTS, ids=range(len(TEXTS)))
def test_span_analysis(row: dict) -> None:
    t = row["text"]
    assert [[k.start, k.end, k.text, k.stem] for k in text.span_tokens(t)] == row["extractive_tokens"]
    assert question_names(t) == row["extractive_question_names"]
    assert _is_elliptic(t) == row["extractive_is_elliptic"]
    assert _value(t) == row["extractive_value"]


def test_stemmers() -> None:
    for w in WORDS:
        word = w["word"]
        got = (text.s_stem(word), text.index_term(word), text.claim_stem(word), text.span_stem(word))
        assert got == (w["bm25_s_stem"], w["bm25_term"], w["support_stem"], w["extractive_stem_of"]), word


def test_the_analyzers_differ_where_documented() -> None:
    # what keeps them apart (see the module docstring): a merged analyzer would fail one of these
    assert text.index_tokens("v1.2.3 costs 3.14") == ["v1.2.3", "cost", "3.14"]
    assert text.claim_tokens("v1.2.3 costs 3.14") == ["v", "1.2.3", "costs", "3.14"]
    assert "many" in text.INDEX_STOPWORDS and "many" not in text.CLAIM_STOPWORDS
    assert text.s_stem("running") == "running" and text.claim_stem("running") == "runn"
    assert text.index_tokens("Straße") == ["strasse"] and text.claim_tokens("Straße") == ["straße"]
    assert [k.text for k in text.span_tokens("O'Neill's, 2,000.")] == ["O'Neill's", ",", "2,000", "."]
