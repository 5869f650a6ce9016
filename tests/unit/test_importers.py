"""Importers on small slices of the shared data sets (skipped when ../shared is absent) and on a tiny BEIR set
written here; file naming, doc capping, passage checks and the `eval import` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from evals.cli import build_eval_app
from evals.import_beir import read_beir, read_qrels
from evals.import_hotpotqa import read_hotpotqa
from evals.import_squad import answer_passage, read_squad
from evals.importers import Imported, ImportSourceError, Names, cap_docs, check_passages, run_import
from evals.suite import Case, load_suite
from rag.errors import ConfigError
from tests.conftest import DATASETS, need_shared

SQUAD = DATASETS / "squad-v2-small" / "squad-v2-small.json"
HOTPOT = DATASETS / "hotpotqa-100"


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def ask() -> None:
        pass

    app.add_typer(build_eval_app(), name="eval")
    return app


# -- naming -------------------------------------------------------------------------------------------------------
def test_names_are_safe_and_unique() -> None:
    names = Names()
    assert names("Lilu (mythology)") == "Lilu_(mythology).txt"
    assert names("I Am a Good Person/I Am a Bad Person") == "I_Am_a_Good_Person_I_Am_a_Bad_Person.txt"
    assert names("...Earth to the Dandy Warhols...") == "Earth_to_the_Dandy_Warhols.txt"
    assert names("Alû") == "Alû.txt"
    assert names("lilu (mythology)") == "lilu_(mythology)-2.txt"  # unique even on case-insensitive disks
    assert names("Lilu (mythology)") == "Lilu_(mythology).txt"  # same key, same name
    assert names("CON") == "CON_.txt"
    assert names("///") == "untitled.txt"
    assert len(names("x" * 500)) <= 104


# -- SQuAD --------------------------------------------------------------------------------------------------------
def test_answer_passage_is_the_answer_sentence() -> None:
    ctx = "Rome is old. The Normans came from Normandy in France. They fought."
    assert answer_passage(ctx, "France", ctx.index("France")) == "The Normans came from Normandy in France."
    assert answer_passage(ctx, "France", 0) == "The Normans came from Normandy in France."  # bad offset: search
    assert answer_passage(ctx, "old. The Normans", None) == "Rome is old. The Normans came from Normandy in France."
    assert answer_passage(ctx, "Vikings", None) is None


def test_squad_slice() -> None:
    imp = read_squad([need_shared(SQUAD)], limit=40)
    assert len(imp.cases) == 40
    raw = json.loads(SQUAD.read_text())
    first_para = raw["data"][0]["paragraphs"][0]
    assert imp.docs["Normans-001.txt"] == first_para["context"]  # one document per paragraph, verbatim
    assert len(imp.docs) == len(raw["data"][0]["paragraphs"])  # the whole article: the others are distractors
    by_id = {c.id: c for c in imp.cases}
    qa = first_para["qas"][1]  # "When were the Normans in Normandy?": answers repeat
    case = by_id[qa["id"]]
    assert case.answers == ("10th and 11th centuries", "in the 10th and 11th centuries")  # deduplicated
    assert case.sources == ("Normans-001.txt",) and case.answerable
    assert case.passages and all(p in first_para["context"] for p in case.passages)
    unanswerable = [c for c in imp.cases if not c.answerable]
    assert unanswerable and all(c.answers == () and c.sources == () for c in unanswerable)
    assert all(c.extra["asked_about"] in imp.docs for c in unanswerable)
    impossible_ids = {q["id"] for p in raw["data"][0]["paragraphs"] for q in p["qas"] if q.get("is_impossible")}
    assert {c.id for c in unanswerable} <= impossible_ids


def test_squad_per_article() -> None:
    imp = read_squad([need_shared(SQUAD)], limit=5, per="article")
    assert list(imp.docs) == ["Normans.txt"]
    assert all(c.sources in ((), ("Normans.txt",)) for c in imp.cases)
    assert all(p in imp.docs["Normans.txt"] for c in imp.cases for p in c.passages or ())


def test_squad_full_counts(tmp_path: Path) -> None:
    summary = run_import("squad", [need_shared(SQUAD)], tmp_path / "sq")
    assert summary["cases"] == 626 and summary["answerable"] == 293 and summary["unanswerable"] == 333
    assert summary["docs"] == 87
    suite = load_suite(tmp_path / "sq" / "suite.jsonl")
    assert not suite.problems and len(suite.cases) == 626
    assert all(c.passages for c in suite.cases if c.answerable)


def test_not_squad(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ImportSourceError, match="not SQuAD JSON"):
        read_squad([bad])


# -- HotpotQA -----------------------------------------------------------------------------------------------------
def test_hotpotqa_slice() -> None:
    need_shared(HOTPOT)
    imp = read_hotpotqa([HOTPOT / "corpus.json", HOTPOT / "questions.json"], limit=5)  # any order
    questions = json.loads((HOTPOT / "questions.json").read_text())[:5]
    assert [c.id for c in imp.cases] == [q["_id"] for q in questions]
    titles = {t for q in questions for t, _ in q["context"]}
    assert len(imp.docs) == len(titles)  # the selected questions' contexts
    c0, q0 = imp.cases[0], questions[0]
    assert c0.answers == (q0["answer"],)
    assert len(c0.sources) == len({t for t, _ in q0["supporting_facts"]}) and all(s in imp.docs for s in c0.sources)
    assert len(c0.passages or ()) == len(q0["supporting_facts"])
    for case in imp.cases:
        assert case.answerable and case.sources
        for p in case.passages or ():
            assert any(p in imp.docs[s] for s in case.sources)  # passages verbatim in their sources
    assert imp.docs["Alû.txt"].startswith("Alû\n\n")


def test_hotpotqa_yes_no_answers_are_answers() -> None:
    imp = read_hotpotqa([need_shared(HOTPOT)], limit=100)
    yes_no = [c for c in imp.cases if c.answers in (("yes",), ("no",))]
    assert yes_no and all(c.gold_answers for c in yes_no)
    assert len(imp.cases) == 100


def test_hotpotqa_cli_full_corpus(tmp_path: Path) -> None:
    need_shared(HOTPOT)
    out = tmp_path / "hp"
    res = CliRunner().invoke(_cli(), ["eval", "import", "hotpotqa", str(HOTPOT), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "994 documents" in res.stdout and "100 cases" in res.stdout
    assert len(list((out / "docs").iterdir())) == 994
    suite = load_suite(out / "suite.jsonl")
    assert len(suite.cases) == 100 and not suite.problems
    assert all((out / "docs" / s).is_file() for c in suite.cases for s in c.sources)
    again = CliRunner().invoke(_cli(), ["eval", "import", "hotpotqa", str(HOTPOT), "--out", str(out)])
    assert again.exit_code == 2 and "--force" in again.stderr
    capped = CliRunner().invoke(_cli(), ["eval", "import", "hotpotqa", str(HOTPOT), "--out", str(out), "--force",
                                         "--limit", "3", "--max-docs", "10"])
    assert capped.exit_code == 0, capped.output
    assert len(list((out / "docs").iterdir())) == 10


# -- BEIR ---------------------------------------------------------------------------------------------------------
@pytest.fixture
def beir_dir(tmp_path: Path) -> Path:
    d = tmp_path / "scifact-mini"
    (d / "qrels").mkdir(parents=True)
    corpus = [
        {"_id": "4983", "title": "Microstructural development", "text": "Alterations of the architecture of brain."},
        {"_id": "5836", "title": "", "text": "Induction of myelodysplasia."},
        {"_id": "7912", "title": "Empty", "text": ""},
        {"_id": "9999", "title": "Distractor", "text": "Nothing relevant."},
        {"_id": "empty", "title": "", "text": ""},
    ]
    (d / "corpus.jsonl").write_text("\n".join(json.dumps(x) for x in corpus) + "\n")
    queries = [
        {"_id": "1", "text": "0-dimensional biomaterials show inductive properties."},
        {"_id": "3", "text": "1,000 genomes project enables mapping."},
        {"_id": "5", "text": "Not judged."},
        {"_id": "7", "text": "Only judged irrelevant."},
    ]
    (d / "queries.jsonl").write_text("\n".join(json.dumps(x) for x in queries) + "\n")
    (d / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n1\t4983\t1\n1\t5836\t2\n3\t7912\t1\n3\t404\t1\n7\t9999\t0\n"
    )
    return d


def test_read_qrels(beir_dir: Path) -> None:
    assert read_qrels(beir_dir / "qrels" / "test.tsv") == {"1": ["4983", "5836"], "3": ["7912", "404"]}


def test_beir(beir_dir: Path) -> None:
    imp = read_beir([beir_dir])
    assert [c.id for c in imp.cases] == ["1", "3"]
    c1 = imp.cases[0]
    assert c1.answers == () and c1.answerable and c1.gold_answers == ()  # retrieval only
    assert c1.sources == ("4983.txt", "5836.txt")
    assert imp.docs["4983.txt"] == "Microstructural development\n\nAlterations of the architecture of brain."
    assert imp.docs["5836.txt"] == "Induction of myelodysplasia."
    assert imp.cases[1].sources == ("7912.txt",)
    assert "empty.txt" not in imp.docs
    assert any("not in the corpus" in n for n in imp.notes)
    files = [beir_dir / "qrels" / "test.tsv", beir_dir / "queries.jsonl", beir_dir / "corpus.jsonl"]
    assert [c.id for c in read_beir(files, limit=1).cases] == ["1"]


def test_beir_cli(beir_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "b"
    res = CliRunner().invoke(_cli(), ["eval", "import", "beir", str(beir_dir), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "2 retrieval-only" in res.stdout
    suite = load_suite(out / "suite.jsonl")
    assert [c.answers for c in suite.cases] == [(), ()]
    assert json.loads((out / "import.json").read_text())["kind"] == "beir"


def test_beir_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ImportSourceError):
        read_beir([tmp_path])


# -- shared helpers -----------------------------------------------------------------------------------------------
def test_cap_docs_keeps_gold_documents() -> None:
    imp = Imported("x", docs={f"d{i}.txt": "t" for i in range(10)},
                   cases=[Case("q", "q?", ("a",), ("d7.txt", "d9.txt"))])
    capped = cap_docs(imp, 3)
    assert list(capped.docs) == ["d0.txt", "d7.txt", "d9.txt"]


def test_check_passages_drops_non_verbatim() -> None:
    imp = Imported("x", docs={"a.txt": "alpha beta gamma"},
                   cases=[Case("q", "q?", ("a",), ("a.txt",), True, ("beta", "delta"))])
    out = check_passages(imp)
    assert out.cases[0].passages == ("beta",)
    assert "1 gold passage" in out.notes[0]


def test_run_import_validates_options(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--limit"):
        run_import("squad", [tmp_path], tmp_path / "o", limit=0)
    with pytest.raises(ConfigError, match="unknown import kind"):
        run_import("natural", [tmp_path], tmp_path / "o")
