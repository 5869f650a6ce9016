"""The bench's measurements, each run in a fresh process (``python -m evals.tools.bench_work TASK SPEC.json``) so
the peak memory of one pipeline never mixes with another's and every model load is paid where it is counted.

Tasks: ``pool`` (embed the corpus documents once, for the synthetic corpus), ``ingest`` (ingest HotpotQA and
score retrieval), ``build`` (grow a synthetic collection), ``query`` (open a collection of N chunks and time
retrieval and full answers). Each writes one JSON object to ``spec["result"]``, with ``peak_rss_mib``.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SYNTH_COLLECTION = "synthetic"
HOTPOT_COLLECTION = "hotpotqa"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


def doc_files(docs_dir: Path) -> list[Path]:
    return sorted(docs_dir.rglob("*.txt"))


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    from evals.metrics import percentile

    p50, p95 = percentile(list(values), 50), percentile(list(values), 95)
    return {"p50_ms": None if p50 is None else round(p50, 2), "p95_ms": None if p95 is None else round(p95, 2)}


def ranking_scores(rankings: Sequence[tuple[Sequence[str], Sequence[str], Sequence[str]]]) -> dict[str, Any]:
    """recall@5 and MRR@10 over (gold sources, top-5 sources, top-10 sources) per question, with the project's
    metric functions (positions are chunks; a source found again lower down earns nothing more)."""
    from evals.metrics import mean, recall_at_k, reciprocal_rank

    recalls, rrs = [], []
    for gold, top5, top10 in rankings:
        g = set(gold)
        recalls.append(recall_at_k([{s} & g for s in top5], len(g), 5))
        rrs.append(reciprocal_rank([{s} & g for s in top10], 10))
    r, m = mean(recalls), mean(rrs)
    return {"recall@5": None if r is None else round(r, 4), "mrr@10": None if m is None else round(m, 4),
            "questions": len(rankings)}


def _cases(spec: dict[str, Any]) -> list[Any]:
    from evals.suite import load_suite

    return list(load_suite(spec["suite"]).cases)


def _citeqa(data_dir: str, collection: str, embedder: str, embedder_obj: Any = None, **over: Any):
    from ingest.compose import Citeqa
    from rag.settings import load_settings

    return Citeqa(load_settings(data_dir=data_dir, collection=collection, embedder=embedder, **over),
                  embedder=embedder_obj)


# -- tasks ---------------------------------------------------------------------------------------------------
def task_pool(spec: dict[str, Any]) -> dict[str, Any]:
    """Embed every sentence of the corpus documents once (minilm-int8), for the synthetic corpus."""
    from evals.tools.bench_synth import build_pool

    texts = [p.read_text(encoding="utf-8").strip() for p in doc_files(Path(spec["docs"]))]
    t0 = time.perf_counter()
    summary = build_pool(texts, Path(spec["pool"]))
    return {**summary, "seconds": round(time.perf_counter() - t0, 3), "embedder": "minilm-int8"}


def task_ingest(spec: dict[str, Any]) -> dict[str, Any]:
    """Ingest the HotpotQA documents (timed), then score retrieval on the suite's questions."""
    docs = Path(spec["docs"])
    characters = sum(len(p.read_text(encoding="utf-8")) for p in doc_files(docs))
    cases = _cases(spec)
    if spec["system"] == "stock":
        from evals.tools import bench_stock

        t0 = time.perf_counter()
        emb = bench_stock.embeddings()
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        splits = bench_stock.split(bench_stock.load_documents(docs))
        store = bench_stock.build(splits, emb, Path(spec["persist"]))
        seconds = time.perf_counter() - t1
        chunks = len(splits)
        rss_ingest = peak_rss_mib()

        tops = [[d.metadata["source"] for d in store.similarity_search(c.question, k=10)] for c in cases]
        quality = {"default": ranking_scores([(c.sources, t[:5], t) for c, t in zip(cases, tops, strict=True)])}
    else:
        qa = _citeqa(spec["data_dir"], HOTPOT_COLLECTION, spec["embedder"])
        t0 = time.perf_counter()
        embedder = qa.embedder
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        report = qa.ingest([docs.resolve()], progress=False)
        seconds = time.perf_counter() - t1
        if report.failed:
            raise RuntimeError(f"citeqa ingest failed for {len(report.failed)} files, e.g. {report.failed[0]}")
        chunks = report.chunks
        rss_ingest = peak_rss_mib()
        root = docs.resolve()
        dense = _citeqa(spec["data_dir"], HOTPOT_COLLECTION, spec["embedder"], embedder, hybrid=False)
        one_round = _citeqa(spec["data_dir"], HOTPOT_COLLECTION, spec["embedder"], embedder, expand=False)
        quality = {}
        for name, app in (("default", qa), ("no_second_round", one_round), ("dense_only", dense)):

            def top(q: str, k: int, app: Any = app) -> list[str]:
                return [Path(h.chunk.source).relative_to(root).as_posix() for h in app.retrieve(q, k)]

            quality[name] = ranking_scores([(c.sources, top(c.question, 5), top(c.question, 10)) for c in cases])
    return {
        "documents": len(doc_files(docs)),
        "characters": characters,
        "chunks": chunks,
        "seconds": round(seconds, 3),
        "chars_per_s": round(characters / seconds, 1),
        "chunks_per_s": round(chunks / seconds, 2),
        "model_load_s": round(load_s, 3),
        "peak_rss_mib": rss_ingest,
        "quality": quality,
    }


def chunk_budget(system: str) -> tuple[int, str]:
    """Each pipeline's own chunk size: the stock splitter's characters, citeqa's default word pieces."""
    if system == "stock":
        from evals.tools.bench_stock import CHUNK_SIZE

        return CHUNK_SIZE, "chars"
    from rag.settings import Settings

    return int(Settings.model_fields["chunk_size"].default), "tokens"


def task_build(spec: dict[str, Any]) -> dict[str, Any]:
    """Grow the synthetic collection from ``have`` to ``want`` chunks (no model: vectors are composed)."""
    from evals.tools.bench_synth import load_pool, synthetic_chunks

    have, want, batch = int(spec["have"]), int(spec["want"]), int(spec.get("batch", 5000))
    budget, unit = chunk_budget(spec["system"])
    chunks, vecs = synthetic_chunks(load_pool(Path(spec["pool"])), budget, unit, have, want)
    t0 = time.perf_counter()
    if spec["system"] == "stock":
        from evals.tools import bench_stock

        table = {c.text: v for c, v in zip(chunks, vecs, strict=True)}
        store = bench_stock.open_store(Path(spec["persist"]), bench_stock.Precomputed(table))
        for lo in range(0, len(chunks), batch):
            part = chunks[lo : lo + batch]
            store.add_texts([c.text for c in part], metadatas=[{"source": c.source, "start_index": c.start}
                                                               for c in part], ids=[c.id for c in part])
        count = store._collection.count()
    else:
        from rag.types import Chunk

        qa = _citeqa(spec["data_dir"], SYNTH_COLLECTION, "minilm")
        recs = [Chunk(id=c.id, source=c.source, text=c.text, start=c.start, end=c.end, index=c.index % 8)
                for c in chunks]
        for lo in range(0, len(recs), batch):
            qa.store.upsert(recs[lo : lo + batch], vecs[lo : lo + batch])  # what Ingestor._flush does per batch
            qa.bm25.add(recs[lo : lo + batch])
        qa.bm25.save()
        count = qa.store.count()
    if count != want:
        raise RuntimeError(f"synthetic {spec['system']} collection holds {count} chunks, expected {want}")
    mean_chars = float(np.mean([len(c.text) for c in chunks])) if chunks else 0.0
    return {"chunks": count, "added": want - have, "seconds": round(time.perf_counter() - t0, 3),
            "chunk_budget": f"{budget} {unit}", "mean_chunk_chars": round(mean_chars, 1)}


def _timed(fn: Callable[[str], Any], questions: Sequence[str], warmup: int) -> tuple[list[float], list[Any]]:
    for q in questions[:warmup]:
        fn(q)
    times, outs = [], []
    for q in questions:
        t0 = time.perf_counter()
        outs.append(fn(q))
        times.append(_ms(t0))
    return times, outs


def task_query(spec: dict[str, Any]) -> dict[str, Any]:
    """Open a collection of N chunks in a fresh process and time retrieval (top-5) and full answers."""
    questions = list(spec["questions"])
    warmup, k = int(spec.get("warmup", 3)), int(spec.get("k", 5))
    t0 = time.perf_counter()
    if spec["system"] == "stock":
        from evals.tools import bench_stock
        from rag.extractive import ExtractiveAnswerer

        emb = bench_stock.embeddings()
        store = bench_stock.open_store(Path(spec["persist"]), emb)
        answerer = ExtractiveAnswerer(bench_stock.AsEmbedder(emb), check_evidence=spec.get("evidence_check", True))
        store.similarity_search(questions[0], k=k)
        open_s = time.perf_counter() - t0

        def retrieve(q: str) -> Any:
            return store.similarity_search(q, k=k)

        def answer(q: str) -> Any:
            return answerer.answer(q, bench_stock.hits(store, q, k))
    else:
        qa = _citeqa(spec["data_dir"], SYNTH_COLLECTION, spec["embedder"])
        if spec.get("evidence_check", True) is False:  # to tell the evidence check's cost from the rest's
            qa.answerer.check_evidence = False  # type: ignore[attr-defined]  # the extractive answerer's switch
        qa.retrieve(questions[0], k)
        open_s = time.perf_counter() - t0

        def retrieve(q: str) -> Any:
            return qa.retrieve(q, k)

        def answer(q: str) -> Any:
            return qa.ask(q, k=k)

    ret_ms, _ = _timed(retrieve, questions, warmup)
    ans_ms, answers = _timed(answer, questions, warmup)
    return {
        "chunks": int(spec["size"]),
        "queries": len(questions),
        "retrieve": latency_summary(ret_ms),
        "answer": latency_summary(ans_ms),
        "abstained": sum(bool(a.abstained) for a in answers),
        "open_s": round(open_s, 3),
        "peak_rss_mib": peak_rss_mib(),
    }


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "pool": task_pool,
    "ingest": task_ingest,
    "build": task_build,
    "query": task_query,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in TASKS:
        print(f"usage: python -m evals.tools.bench_work {{{','.join(TASKS)}}} SPEC.json", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    spec = json.loads(Path(args[1]).read_text(encoding="utf-8"))
    t0 = time.perf_counter()
    result = TASKS[args[0]](spec)
    result.setdefault("peak_rss_mib", peak_rss_mib())
    result["process_s"] = round(time.perf_counter() - t0, 3)
    Path(spec["result"]).write_text(json.dumps(result, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
