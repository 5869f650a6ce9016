"""rag.sentences.split_sentences: exact, trimmed offsets on prose, markdown structure, unicode and run-ons."""

from __future__ import annotations

import pytest

from rag.sentences import MAX_SENTENCE_CHARS, split_sentences


def texts(text: str, start: int = 0, end: int | None = None) -> list[str]:
    spans = split_sentences(text, start, end)
    check_spans(text, spans, start, len(text) if end is None else end)
    return [text[a:b] for a, b in spans]


def check_spans(text: str, spans: list[tuple[int, int]], start: int, end: int) -> None:
    """Every span is non-empty, trimmed, in order, inside the range, and nothing but whitespace is skipped."""
    pos = start
    for a, b in spans:
        assert start <= pos <= a < b <= end
        assert text[a:b] == text[a:b].strip()
        assert text[pos:a].strip() == "", f"text skipped between sentences: {text[pos:a]!r}"
        pos = b
    assert text[pos:end].strip() == ""


def test_prose() -> None:
    text = "The cat sat on the mat. It was warm! Was it happy? Nobody knows.\n"
    assert texts(text) == ["The cat sat on the mat.", "It was warm!", "Was it happy?", "Nobody knows."]


def test_blank_lines_end_sentences_without_punctuation() -> None:
    text = "A title without a stop\n\nThe body starts here. And goes on."
    assert texts(text) == ["A title without a stop", "The body starts here.", "And goes on."]


def test_markdown_headings_and_lists() -> None:
    text = (
        "# Install\n"
        "Run the installer. Then reboot.\n"
        "## Options\n"
        "- first option\n"
        "- second option\n"
        "1. step one\n"
        "2) step two\n"
        "> a quote line\n"
        "| a | b |\n"
    )
    assert texts(text) == [
        "# Install",
        "Run the installer.",
        "Then reboot.",
        "## Options",
        "- first option",
        "- second option",
        "1. step one",
        "2) step two",
        "> a quote line",
        "| a | b |",
    ]


def test_unicode_quotes_and_dashes() -> None:
    text = "“China is ready,” he said. Some 50,000 soldiers – from 14 nations — took part. ‘Fine’ she said…"
    out = texts(text)
    assert out[0] == "“China is ready,” he said."
    assert "Some 50,000 soldiers – from 14 nations — took part." in out
    assert "".join(out).replace(" ", "") == text.replace(" ", "")


def test_abbreviations_do_not_end_sentences() -> None:
    text = "Dr. Smith met Mr. Jones at 3 p.m. in the U.S. office. They talked, e.g. about pay."
    out = texts(text)
    assert out[0].startswith("Dr. Smith met Mr. Jones")
    assert out[-1] == "They talked, e.g. about pay."


def test_decimals_and_urls_stay_whole() -> None:
    text = "Pi is 3.14 roughly. See https://example.com/a.b.c for more."
    assert texts(text) == ["Pi is 3.14 roughly.", "See https://example.com/a.b.c for more."]


def test_long_run_on_text_is_cut_at_whitespace() -> None:
    text = " ".join(f"word{i}" for i in range(2000))  # ~15,000 characters, no sentence end
    out = texts(text)
    assert len(out) > 1
    assert all(len(s) <= MAX_SENTENCE_CHARS for s in out)
    assert " ".join(out) == text  # cut only at spaces: no word is broken


def test_sub_range_offsets_point_into_the_whole_text() -> None:
    text = "Page one ends here.\n\nPage two starts. It has two sentences."
    start = text.index("Page two")
    spans = split_sentences(text, start, len(text))
    check_spans(text, spans, start, len(text))
    assert [text[a:b] for a, b in spans] == ["Page two starts.", "It has two sentences."]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t\n", "\r\n"])
def test_blank_text_has_no_sentences(text: str) -> None:
    assert split_sentences(text) == []


def test_mixed_whitespace_and_crlf() -> None:
    text = "  First line.\r\n\r\n\tSecond one here.  \r\nThird.  "
    assert texts(text) == ["First line.", "Second one here.", "Third."]


def test_control_characters_do_not_crash() -> None:
    text = "Odd \x07bell\x01 text. Another\x0b sentence."
    assert texts(text)  # offsets still exact, whatever blingfire makes of it


def test_non_latin_scripts() -> None:
    text = "Привет, мир. Как дела? 你好。世界很大。 Γειά σου κόσμε."
    out = texts(text)
    assert out[0] == "Привет, мир."
    assert out[-1].endswith("κόσμε.")
