"""Writes ``text_analysis.json`` beside this file: what the lexical analyzers of BM25 (rag/bm25.py), the support
check (rag/support.py) and the extractive answerer (rag/extractive.py) returned for a varied sample of texts and
words, recorded once, on the code from before they were merged into rag/text.py.

tests/unit/test_text.py checks that rag.text (and the names those modules still export) give exactly the same.
Do not rerun this to make that test pass: a difference there is a change of BM25 scores, support decisions or
answers. It reads the pre-merge private names (``rag.bm25._raw_tokens``, ``rag.lexicon``...), so it only runs on
a checkout from before rag/text.py existed; it is kept to show how the fixture was made. Run from the repository
root: ``python tests/unit/data/make_text_analysis.py``.
"""

from __future__ import annotations

import importlib
import json
import re
import unicodedata
from pathlib import Path

TRICKY = [
    "The company's 2,000 documents don't cite v1.2.3 or 3.14; see Fig.3 and ZX-4471.",
    "China has sent more than 2,000 troops [4]. It has 1,234,567 people [1, 2].",
    "It costs 3.5 million dollars, i.e. $3.5m, or 3,500,000 (about 3.5e6).",
    "Python 3.11.7 runs on 10.0.0.1 since 2021.01.02; build 1234567890123456789.",
    "Version 1.2. ended; 3. items; 1,23 and 12,3456 and 1,2345 and ,5 and 5, and 2,000.",
    "end with a dot 2,000. and 3.5. and 3.11.7. and v2.",
    "state-of-the-art, well-known, twenty-five, ninety-nine, e-mail, co-operate, x-ray, -5, +3, 3-4 km",
    "O'Neill's rock 'n' roll isn't ‘quoted’; “double” don’t it’s the students' books; Mr. O’Brien’s cat.",
    "Ünïcödé café naïve Straße ΣΊΣΥΦΟΣ ﬁle ｆｕｌｌｗｉｄｔｈ １２３ Ⅻ x² ½ 日本語のテキスト ٣٤٥ İstanbul",
    "Barack Obama met Angela Merkel in New York City on 4 July 1997; Richard I of Normandy; the U.S.A.",
    "How many troops did China send? and in 2018?",
    "What is the capital of Atlantis?",
    "Who led it?",
    "and what about the Chinese contingent?",
    "snake_case_name and CamelCase and HTTPServer and x86_64 and __init__ and 1_000_000 and 0x1F",
    "",
    "   ",
    "...",
    "[1][2]",
    "The 1990s and the 19th century; 10:30 a.m.; 5pm; 100%; $5,000; €20; £3.50; 50 per cent.",
    "STUDIES studies study's classes focus buses goes does agrees toes canoes aies eies bus gas ss is",
    "He went, took, taken, children, people, women; was born and died; they thought, fought and caught it.",
    "One of them, two hundred and fifty, three thousand, a dozen, twenty five, nineteen ninety, one million.",
    "line one\nline two\tTabbed\u00a0non-breaking – en dash — em dash - hyphen; x–y; “A” ‘b’ „c“",
    "I ❤ RAG 🚀 2024!! A.B. Jones, e.g. U.N., St. Louis; Dr. Who's TARDIS.",
    "Running, jumped, painted, sings, classes, glasses, processes, is, was, has, this, its, it's, one's",
    "MANY people said much; says who? When, where, why and how?",
    "The Korvath bridge is 412 m long. It was completed in 1897.",
    "First chapter",
    "# Getting started\nInstall it with pip.",
    "q3_report-final",
]

WORDS = [
    "studies", "study", "flies", "eies", "aies", "toes", "aes", "ees", "oes", "goes", "classes", "class", "focus",
    "bus", "buses", "its", "is", "gas", "ss", "ing", "sing", "bring", "running", "jumped", "paintings", "agreed",
    "need", "speed", "seed", "hundreds", "years", "v1", "x86", "3s", "1990s", "ΣΊΣΥΦΟΣ", "σίσυφος", "straße",
    "naïve", "o'neill's", "one's", "'s", "'", "isn't", "the", "many", "said", "s", "t", "also", "from",
]


def _sample() -> list[str]:
    """Every third non-blank line of docs/*.md (prose, headings, tables, code, links), then the tricky cases."""
    texts: list[str] = []
    for path in sorted(Path("docs").glob("*.md")):
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        texts += lines[::3]
    return list(dict.fromkeys(texts + TRICKY))


def main() -> None:
    # the modules as they were (rag.lexicon is gone since): imported by name
    bm25, ex, sp, lexicon = (importlib.import_module(f"rag.{m}") for m in ("bm25", "extractive", "support", "lexicon"))
    IRREGULAR = lexicon.IRREGULAR

    texts = _sample()
    word = re.compile(r"[^\W_]+")
    records = []
    vocab: set[str] = set(WORDS) | set(IRREGULAR) | set(IRREGULAR.values())
    for t in texts:
        raw = bm25._raw_tokens(t)
        claim = sp.tokens(t)
        vocab |= set(raw) | set(claim) | set(word.findall(t))
        records.append(
            {
                "text": t,
                "bm25_raw": raw,
                "bm25_tokenize": bm25.tokenize(t),
                "bm25_title_key": bm25.title_key(t),
                "bm25_document_title": bm25.document_title(t, "/data/q3_report-final.md"),
                "bm25_link_words": [w.casefold() for w in bm25._WORD.findall(unicodedata.normalize("NFKC", t))],
                "words": word.findall(t),
                "support_tokens": claim,
                "support_content_words": sp.content_words(t),
                "support_names": sorted(sp.names(t)),
                "support_numbers": sorted(sp.numbers(t)),
                "extractive_tokens": [[k.start, k.end, k.text, k.stem] for k in ex._tokens(t)],
                "extractive_question_names": ex.question_names(t),
                "extractive_is_elliptic": ex._is_elliptic(t),
                "extractive_value": ex._value(t),
            }
        )
    out = {
        "bm25_stopwords": sorted(bm25.STOPWORDS),
        "support_stopwords": sorted(sp.STOPWORDS),
        "irregular": IRREGULAR,
        "number_words": sp._NUMBER_WORDS,
        "texts": records,
        "word_fields": ["word", "bm25_s_stem", "bm25_term", "support_stem", "extractive_stem_of"],
        "words": [[w, bm25._s_stem(w), bm25._term(w), sp._stem(w), ex._stem_of(w)] for w in sorted(vocab)],
    }
    dest = Path(__file__).with_name("text_analysis.json")
    with open(dest, "w", encoding="utf-8") as fh:
        fh.write("{\n")
        items = list(out.items())
        for i, (key, value) in enumerate(items):
            sep = "," if i < len(items) - 1 else ""
            if key in ("texts", "words"):  # one row a line, so a diff shows which text changed
                rows = ",\n".join("    " + json.dumps(v, ensure_ascii=False) for v in value)
                fh.write(f"  {json.dumps(key)}: [\n{rows}\n  ]{sep}\n")
            else:
                fh.write(f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}{sep}\n")
        fh.write("}\n")
    print(f"{dest}: {len(records)} texts, {len(out['words'])} words")


if __name__ == "__main__":
    main()
