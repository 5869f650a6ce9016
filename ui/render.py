"""HTML for the chat and the sources panel. Pure functions of records, so what a user sees is testable
without a browser. Every piece of document or answer text goes through ``html.escape``.

A citation chip is ``<span class="cite-chip cq-t{turn}-n{n}">``: the chat's sanitiser keeps classes but drops
``data-*`` attributes, so the turn and the marker number travel in the class name (ui/static/app.js reads it).
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from typing import Any

from ingest.loaders.common import page_label
from rag.types import Answer, Citation

CONTEXT_CHARS = 300
MARKER = re.compile(r"\[(\d+)\]")

EMPTY_SOURCES = (
    '<div class="cq-empty">Ask a question: the passages each answer cites appear here, with the exact '
    "supporting span highlighted. Click a numbered chip in an answer to jump to its passage.</div>"
)


def _text(s: str) -> str:
    """Plain text inside the message's HTML block: escaped, line breaks kept, no blank line (a blank line
    would end the HTML block and hand the rest to the Markdown renderer)."""
    return html.escape(s, quote=False).replace("\n", "<br>")


_MARKDOWN_LINK = str.maketrans({"[": "&#91;", "]": "&#93;", "!": "&#33;"})


def user_html(question: str) -> str:
    """The user's own message: plain text, never Markdown. The chat renders Markdown, so a question holding
    ``![x](https://host/pixel.png)`` would load a remote image (and tell that host the chat was opened); inside an
    HTML block, with the bracket characters as entities, nothing in it is a link or an image."""
    return f'<div class="cq-question">{_text(question).translate(_MARKDOWN_LINK)}</div>'


_MD_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character: CommonMark lets each be escaped


def markdown_literal(text: str) -> str:
    """``text`` for a Markdown component, shown as typed: every punctuation character backslash-escaped (no
    image, link, emphasis or HTML tag can form), line breaks as spaces (one line)."""
    return _MD_PUNCT.sub(r"\\\1", " ".join(text.split()))


def without_markers(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", MARKER.sub("", text)).strip()


def chip(turn: int, n: int, *, supported: bool | None = None, title: str = "") -> str:
    cls = f"cite-chip cq-t{turn}-n{n}" + (" cq-chip-unsupported" if supported is False else "")
    tip = html.escape(title or f"Show passage [{n}]", quote=True)
    return f'<span class="{cls}" role="button" tabindex="0" title="{tip}">{n}</span>'


def _with_chips(text: str, turn: int, by_n: dict[int, Citation], name: Callable[[str], str]) -> str:
    out: list[str] = []
    pos = 0
    for m in MARKER.finditer(text):
        n = int(m.group(1))
        c = by_n.get(n)
        if c is None:
            continue
        out.append(_text(text[pos : m.start()]))
        page = f", {page_label(c.source, c.page)}" if c.page is not None else ""
        out.append(chip(turn, n, supported=c.supported, title=f"[{n}] {name(c.source)}{page}"))
        pos = m.end()
    out.append(_text(text[pos:]))
    return "".join(out)


def _sentence_spans(answer: str, sentences: Sequence[str]) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    for s in sentences:
        s = s.strip()
        i = answer.find(s) if s else -1
        if i >= 0:
            spans.append((i, i + len(s)))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a < merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def answer_html(ans: Answer, turn: int, name: Callable[[str], str] = str) -> str:
    """The final assistant message: answer text with [n] chips, unsupported sentences marked."""
    if ans.abstained:
        body = (
            '<div class="cq-abstain"><b>Not found in your documents.</b> '
            f"{_text(ans.answer or 'I could not find this in the documents.')} Nothing is cited, so nothing is "
            "claimed. Try rephrasing, or add the document that answers it in the Library tab.</div>"
        )
        return f'<div class="cq-answer">{body}{_notes(ans)}</div>'
    by_n = {c.n: c for c in ans.citations}
    parts: list[str] = []
    if ans.short_answer:
        parts.append(f'<div class="cq-short">Short answer: <b>{_text(ans.short_answer)}</b></div>')
    text = ans.answer
    for dash in (" — ", " - ", ": "):  # the short answer is in its own box: do not say it twice
        if ans.short_answer and text.startswith(ans.short_answer + dash):
            text = text[len(ans.short_answer + dash) :]
            break
    pos = 0
    for a, b in _sentence_spans(text, ans.unsupported_sentences):
        parts.append(_with_chips(text[pos:a], turn, by_n, name))
        parts.append(
            '<span class="cq-unsupported-sentence" title="Not supported by the cited passages">'
            f"⚠ {_with_chips(text[a:b], turn, by_n, name)}</span>"
        )
        pos = b
    parts.append(_with_chips(text[pos:], turn, by_n, name))
    if ans.unsupported_sentences:
        parts.append(
            '<div class="cq-warn">⚠ Sentences marked ⚠ are not supported by the passages they cite: '
            "check them before relying on them.</div>"
        )
    body = "".join(parts)
    return f'<div class="cq-answer">{body}{_notes(ans)}</div>'


def _notes(ans: Answer) -> str:
    if not ans.notes:
        return ""
    return "".join(f'<div class="cq-note">note: {_text(n)}</div>' for n in ans.notes)


def streaming_html(text: str) -> str:
    """The assistant message while the answer streams in: each ``[n]`` marker becomes a pending chip as soon as it
    arrives (not clickable yet: the passage it names is checked, and renumbered, when the answer is done)."""
    out: list[str] = []
    pos = 0
    for m in MARKER.finditer(text):
        out.append(_text(text[pos : m.start()]))
        out.append(f'<span class="cite-chip cq-chip-pending" title="passage [{m.group(1)}], checked when the '
                   f'answer is done">{m.group(1)}</span>')
        pos = m.end()
    out.append(_text(text[pos:]))
    return f'<div class="cq-answer">{"".join(out)}<span class="cq-cursor">▍</span></div>'


def error_html(message: str) -> str:
    return f'<div class="cq-error"><b>Could not answer:</b> {_text(message)}</div>'


# -- the sources panel ---------------------------------------------------------------------------------------
def _snap_left(text: str, i: int) -> int:
    if i <= 0:
        return 0
    j = text.find(" ", i, i + 40)
    return j + 1 if j >= 0 else i


def _snap_right(text: str, i: int) -> int:
    if i >= len(text):
        return len(text)
    j = text.rfind(" ", i - 40, i)
    return j if j > 0 else i


def _tidy(s: str) -> str:
    return html.escape(re.sub(r"\n{3,}", "\n\n", s), quote=False)


def passage_html(doc_text: str | None, c: Citation, context: int = CONTEXT_CHARS) -> str:
    """The cited span inside ~``context`` characters either side, the span in <mark>."""
    start, end = c.start, c.end
    if doc_text is not None and doc_text[start:end] != c.text:
        found = doc_text.find(c.text) if c.text else -1  # the file changed since: find the span again
        start, end = (found, found + len(c.text)) if found >= 0 else (-1, -1)
    if doc_text is None or start < 0:
        return f'<span class="cq-ctx-missing">(surrounding text unavailable)</span> <mark>{_tidy(c.text)}</mark>'
    a = _snap_left(doc_text, start - context)
    b = _snap_right(doc_text, end + context)
    before = ("…" if a > 0 else "") + _tidy(doc_text[a:start])
    after = _tidy(doc_text[end:b]) + ("…" if b < len(doc_text) else "")
    return f"{before}<mark>{_tidy(doc_text[start:end])}</mark>{after}"


def sources_html(
    ans: Answer,
    turn: int,
    *,
    text_of: Callable[[str], str | None],
    name: Callable[[str], str] = str,
    active: int | None = None,
    page_view: Callable[[Citation], Any] | None = None,
) -> str:
    """The panel for one answer: each citation with file, page and the highlighted span in context. A PDF
    citation also offers its page as an image; ``page_view`` (given for the citation ``active`` only) renders
    it: an `ingest.page_view.PageView` or None."""
    head = (
        f'<div class="cq-sources" id="cq-sources-{turn}"><div class="cq-sources-q">Answer {turn + 1}: '
        f"<q>{html.escape(ans.question)}</q></div>"
    )
    if ans.abstained:
        return head + (
            '<div class="cq-abstain">No passage in the collection answers this question, so the answer '
            "cites nothing. citeqa says so rather than guess.</div></div>"
        )
    parts = [head]
    if ans.unsupported_sentences:
        items = "".join(f"<li>{html.escape(without_markers(s))}</li>" for s in ans.unsupported_sentences)
        parts.append(
            '<div class="cq-unsupported-list"><b>⚠ Not supported by the cited passages:</b>'
            f"<ul>{items}</ul></div>"
        )
    if not ans.citations:
        parts.append('<div class="cq-empty">This answer cites no passages.</div>')
    texts: dict[str, str | None] = {}
    for c in ans.citations:
        if c.source not in texts:
            texts[c.source] = text_of(c.source)
        cls = "cq-passage" + (" cq-active" if c.n == active else "") + (
            " cq-unsupported" if c.supported is False else ""
        )
        page = f'<span class="cq-page">{page_label(c.source, c.page)}</span>' if c.page is not None else ""
        flag = (
            '<span class="cq-flag">⚠ does not support its sentence</span>'
            if c.supported is False
            else ('<span class="cq-ok">✓ supports its sentence</span>' if c.supported else "")
        )
        parts.append(
            f'<div class="{cls}" id="cq-src-{turn}-{c.n}">'
            f'<div class="cq-passage-head">{chip(turn, c.n, supported=c.supported)}'
            f'<span class="cq-file" title="{html.escape(c.source, quote=True)}">{html.escape(name(c.source))}'
            f"</span>{page}{flag}</div>"
            f'<div class="cq-passage-text">{passage_html(texts[c.source], c)}</div>'
            f"{_page_part(turn, c, page_view if c.n == active else None, name)}</div>"
        )
    parts.append("</div>")
    return "".join(parts)


def _page_part(turn: int, c: Citation, page_view: Callable[[Citation], Any] | None, name: Callable[[str], str]) -> str:
    """A PDF citation's page: the button that asks for it, or (``page_view`` given) the page itself."""
    if c.page is None or not c.source.lower().endswith(".pdf"):
        return ""
    if page_view is None:
        return (f'<button type="button" class="cq-show-page cq-pv-t{turn}-n{c.n}">Show on page {c.page}</button>')
    view = page_view(c)
    if view is None:
        return ('<div class="cq-pageview cq-empty">The page cannot be shown: the file has moved or changed since it '
                "was ingested.</div>")
    return page_view_html(view, c, name(c.source))


def page_view_html(view: Any, c: Citation, file_name: str) -> str:
    """The page image with one highlight box per line of the cited span (positions in % of the page)."""
    import base64

    boxes = "".join(
        f'<div class="cq-hl" style="left:{b.left * 100:.3f}%;top:{b.top * 100:.3f}%;'
        f'width:{(b.right - b.left) * 100:.3f}%;height:{(b.bottom - b.top) * 100:.3f}%"></div>'
        for b in view.boxes
    )
    note = (f"cited span boxed from the {view.by}" if view.boxes
            else "the cited span was not found on this page's text")
    src = "data:image/png;base64," + base64.b64encode(view.png).decode("ascii")
    alt = html.escape(f"page {c.page} of {file_name}", quote=True)
    return (
        f'<div class="cq-pageview" id="cq-pv-{c.n}"><div class="cq-pageview-note">Page {c.page}: {note}</div>'
        f'<div class="cq-pageimg"><img src="{src}" alt="{alt}" width="{view.width}" height="{view.height}">'
        f"{boxes}</div></div>"
    )
