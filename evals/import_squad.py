"""SQuAD 2.0 JSON -> documents and cases.

One document per paragraph by default (``<Title>-<nnn>.txt``, the paragraph verbatim), so that ``sources``
says which passage answers the question and retrieval metrics mean something; ``per="article"`` writes one
document per article (paragraphs separated by blank lines) instead. Answers are deduplicated; questions marked
``is_impossible`` (or without answers) become ``answerable: false`` with no sources (the paragraph they were
written against is kept as ``asked_about``). Gold passages are the sentences of the paragraph that hold each
answer span.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.import_common import Imported, ImportSourceError, Names, dedupe, read_json
from evals.suite import Case


def answer_passage(context: str, text: str, start: int | None) -> str | None:
    """The sentence(s) of ``context`` covering the answer span (located by ``start``, else by search)."""
    from rag.sentences import split_sentences

    text = text.strip()
    if not text:
        return None
    if start is None or context[start : start + len(text)] != text:
        start = context.find(text)
        if start < 0:
            return None
    end = start + len(text)
    spans = [(a, b) for a, b in split_sentences(context) if a < end and b > start]
    if not spans:
        return None
    return context[spans[0][0] : spans[-1][1]]


def _articles(paths: Sequence[Path]) -> list[dict[str, Any]]:
    articles: list[dict[str, Any]] = []
    for path in paths:
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("data"), list):
            raise ImportSourceError(f'{path} is not SQuAD JSON (expected {{"version": ..., "data": [articles]}})')
        articles.extend(data["data"])
    return articles


def read_squad(paths: Sequence[Path], *, limit: int | None = None, per: str = "paragraph") -> Imported:
    if per not in ("paragraph", "article"):
        raise ImportSourceError(f"--per must be paragraph or article, not {per!r}")
    out = Imported("squad")
    names = Names()
    taken = 0
    for article in _articles(paths):
        if limit is not None and taken >= limit:
            break
        title = str(article.get("title") or "untitled")
        paragraphs = article.get("paragraphs") or []
        article_name = names(title) if per == "article" else None
        texts = []
        article_cases: list[Case] = []
        for i, para in enumerate(paragraphs, start=1):
            context = str(para.get("context") or "")
            name = article_name or names(f"{title}-{i:03d}")
            texts.append(context)
            if per == "paragraph":
                out.docs[name] = context
            for qa in para.get("qas") or []:
                if limit is not None and taken >= limit:
                    break
                taken += 1
                raw = [a for a in qa.get("answers") or [] if str(a.get("text") or "").strip()]
                answerable = bool(raw) and not qa.get("is_impossible", False)
                extra: dict[str, Any] = {"dataset": "squad-v2", "title": title}
                if answerable:
                    answers = dedupe([str(a["text"]) for a in raw])
                    passages = dedupe([p for a in raw if (p := answer_passage(context, str(a["text"]),
                                                                              a.get("answer_start")))])
                    case = Case(str(qa["id"]), str(qa["question"]).strip(), tuple(answers), (name,), True,
                                tuple(passages), extra)
                else:
                    plausible = dedupe([str(a.get("text") or "") for a in qa.get("plausible_answers") or []])
                    if plausible:
                        extra["plausible_answers"] = plausible
                    extra["asked_about"] = name
                    case = Case(str(qa["id"]), str(qa["question"]).strip(), (), (), False, None, extra)
                if case.question:
                    article_cases.append(case)
        if article_name:
            out.docs[article_name] = "\n\n".join(texts)
        out.cases.extend(article_cases)
    return out
