"""The foundation end to end, in process: real model, real embedded Chroma, real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ingest.compose import Citeqa
from rag.errors import BusyError, NotFoundError, QuestionError
from rag.settings import load_settings

pytestmark = pytest.mark.integration


class CountingEmbedder:
    """The real embedder, counting how many texts it was asked to embed."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.texts = 0

    def embed(self, texts):
        self.texts += len(texts)
        return self.inner.embed(texts)


@pytest.fixture
def qa(embedder, tmp_path: Path) -> Citeqa:
    s = load_settings(embedder="minilm-int8", collection="test-docs")
    return Citeqa(s, embedder=CountingEmbedder(embedder))


def _write(folder: Path, name: str, text: str) -> Path:
    p = folder / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text, encoding="utf-8")
    return p


def test_vostok_answer_cites_the_sentence(qa: Citeqa, vostok_dir: Path) -> None:
    report = qa.ingest([vostok_dir], progress=False)
    assert report.ok and len(report.added) == 1 and report.chunks > 0
    ans = qa.ask("How many troops did China send?")
    assert not ans.abstained
    assert ans.short_answer == "more than 2,000"
    c = ans.citations[0]
    assert c.source.endswith("vostok-2022.txt")
    text = (vostok_dir / "vostok-2022.txt").read_text(encoding="utf-8")
    assert text[c.start : c.end] == c.text
    assert "more than 2,000 troops" in c.text
    assert f"[{c.n}]" in ans.answer
    assert set(ans.timings) >= {"retrieve", "answer", "total"}


def test_unanswerable_question_abstains(qa: Citeqa, vostok_dir: Path) -> None:
    qa.ingest([vostok_dir], progress=False)
    ans = qa.ask("What is the population of Paris?")
    assert ans.abstained
    assert ans.citations == ()
    assert "could not find" in ans.answer


def test_incremental_reingest(qa: Citeqa, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    _write(docs, "a.txt", "The lighthouse at Point Ardent was built in 1874 by the harbour board.")
    _write(docs, "sub/b.md", "# Ferries\n\nThe night ferry to Osk leaves at 23:40 from pier four.")
    c = _write(docs, "c.txt", "The museum holds 412 brass instruments. Entry is free on Sundays.")
    first = qa.ingest([docs], progress=False)
    assert sorted(Path(p).name for p in first.added) == ["a.txt", "b.md", "c.txt"]
    total = qa.store.count()
    embedded = qa.embedder.texts

    second = qa.ingest([docs], progress=False)
    assert len(second.unchanged) == 3 and not second.added and not second.updated
    assert qa.embedder.texts == embedded, "unchanged files must not be re-embedded"
    assert qa.store.count() == total, "running twice must not duplicate chunks"

    old_ids = set(qa.store.ids_for_source(str(c.resolve())))
    c.write_text("The museum holds 97 clocks. Entry costs 5 euros.", encoding="utf-8")
    third = qa.ingest([docs], progress=False)
    assert [Path(p).name for p in third.updated] == ["c.txt"]
    new_ids = set(qa.store.ids_for_source(str(c.resolve())))
    assert new_ids and not (old_ids & new_ids), "the changed file's old chunks must be gone"
    assert qa.store.count() == sum(i.chunks for i in qa.sources())
    assert len(qa.bm25) == qa.store.count()
    ans = qa.ask("How many clocks does the museum hold?")
    assert ans.short_answer and "97" in ans.short_answer


def test_prune_and_forget(qa: Citeqa, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    a = _write(docs, "a.txt", "Alpha station records rainfall every hour since 1990.")
    b = _write(docs, "b.txt", "Bravo station measures wind speed with three anemometers.")
    qa.ingest([docs], progress=False)
    b.unlink()
    kept = qa.ingest([docs], progress=False)
    assert not kept.removed and len(qa.sources()) == 2, "without --prune nothing is removed"
    pruned = qa.ingest([docs], prune=True, progress=False)
    assert [Path(p).name for p in pruned.removed] == ["b.txt"]
    assert [Path(i.source).name for i in qa.sources()] == ["a.txt"]
    assert qa.store.count() == qa.sources()[0].chunks == len(qa.bm25)

    n = qa.forget(a)
    assert n >= 1 and qa.sources() == [] and qa.store.count() == 0 and len(qa.bm25) == 0
    with pytest.raises(NotFoundError):
        qa.forget(a)


def test_bad_files_are_reported_and_the_rest_ingested(qa: Citeqa, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    _write(docs, "good.txt", "The orchard grows 36 varieties of apple on the north slope.")
    (docs / "empty.txt").write_bytes(b"")
    (docs / "binary.txt").write_bytes(bytes(range(256)) * 20)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog")
    (docs / "notes.xyz").write_text("unknown format", encoding="utf-8")
    report = qa.ingest([docs], progress=False)
    failed = {Path(p).name: reason for p, reason in report.failed}
    assert set(failed) == {"empty.txt", "binary.txt", "broken.pdf", "notes.xyz"}
    assert all(reason and "\n" not in reason for reason in failed.values())
    assert [Path(p).name for p in report.added] == ["good.txt"]
    assert not report.ok
    # running again does not duplicate the good file and reports the bad ones again
    again = qa.ingest([docs], progress=False)
    assert len(again.failed) == 4 and [Path(p).name for p in again.unchanged] == ["good.txt"]
    assert qa.store.count() == qa.sources()[0].chunks


def test_questions_are_checked(qa: Citeqa, tmp_path: Path) -> None:
    _write(tmp_path / "d", "a.txt", "The bridge is 300 metres long.")
    qa.ingest([tmp_path / "d"], progress=False)
    for bad in ["", "   ", "?!...", "x" * 100_000]:
        with pytest.raises(QuestionError):
            qa.ask(bad)
    assert qa.ask("Wie lang ist die Brücke?") is not None  # another language: answered or abstained, no crash


def test_empty_collection_says_what_to_do(qa: Citeqa) -> None:
    with pytest.raises(NotFoundError, match="citeqa ingest"):
        qa.ask("How long is the bridge?")


def test_concurrent_ingest_is_refused(qa: Citeqa, tmp_path: Path) -> None:
    _write(tmp_path / "d", "a.txt", "Some text about rivers and their deltas.")
    with qa.collection.lock():
        with pytest.raises(BusyError, match="another ingest"):
            qa.ingest([tmp_path / "d"], progress=False)


def test_copy_of_folder_keeps_separate_sources(qa: Citeqa, tmp_path: Path, vostok_dir: Path) -> None:
    one = tmp_path / "one"
    shutil.copytree(vostok_dir, one)
    two = tmp_path / "two"
    shutil.copytree(vostok_dir, two)
    qa.ingest([one, two], progress=False)
    infos = qa.sources()
    assert len(infos) == 2 and infos[0].content_hash == infos[1].content_hash
    assert qa.store.count() == infos[0].chunks * 2, "identical content in two files must not collide"
