"""``make bench``: citeqa against the stock LangChain pipeline, in one run, on this machine.

``python -m evals.tools.bench --out DIR [--quick]`` measures, for the stock pipeline (``evals.tools.bench_stock``)
and for citeqa with each embedder (the float ``minilm`` and the int8 ``minilm-int8``):

- ingest throughput (characters of document text per second, chunks per second) and peak memory, on
  HotpotQA-100's corpus (one document per title, imported with ``evals.importers``);
- recall@5 and MRR@10 of the HotpotQA supporting paragraphs (``evals.metrics``), on the same collection;
- cold start of ``citeqa ask`` (process start to printed answer; the stock pipeline's own ask script);
- retrieval and full-answer latency p50/p95 and the ask path's peak memory at 1k, 10k and 100k chunks of a
  synthetic corpus (``evals.tools.bench_synth``: real text, vectors composed from real document embeddings);

and the ratio citeqa/stock of each. Every measurement runs in its own process (``evals.tools.bench_work``). It
prints a table and writes ``bench.json`` and ``bench.md`` under ``--out``. ``--quick`` runs the same code on
tiny sizes, to keep the harness working in tests; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from evals.tools.shared import REPO, datasets_dir

FORMAT = "citeqa-bench/1"
STOCK = "stock"
EMBEDDERS = ("minilm", "minilm-int8")
SYSTEMS = (STOCK, *(f"citeqa-{e}" for e in EMBEDDERS))
INT8_QUALITY_TOLERANCE = 0.01  # the rule: int8 becomes the default only within 1% of the float model


class BenchError(RuntimeError):
    pass


@dataclass
class Config:
    quick: bool
    limit: int | None  # HotpotQA questions imported (None: all 100, with the whole 994-document corpus)
    sizes: tuple[int, ...]  # synthetic collection sizes for latency and ask-path memory
    queries: int  # timed questions per size and system
    warmup: int  # untimed questions first, per size and system
    cold_runs: int  # cold starts per system (median reported)
    k: int = 5
    timeout_s: int = 1800  # per worker process

    @classmethod
    def make(cls, quick: bool) -> Config:
        if quick:
            return cls(quick=True, limit=4, sizes=(100, 300), queries=4, warmup=1, cold_runs=1, timeout_s=300)
        return cls(quick=False, limit=None, sizes=(1_000, 10_000, 100_000), queries=50, warmup=3, cold_runs=3)


@dataclass
class Bench:
    cfg: Config
    work: Path
    hotpotqa: Path
    log: Any  # rich Console
    started: float = field(default_factory=time.perf_counter)
    workers: list[dict[str, Any]] = field(default_factory=list)

    # -- process plumbing ----------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CITEQA_")}
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", ANONYMIZED_TELEMETRY="False")
        return env

    def say(self, msg: str) -> None:
        self.log.print(f"[dim]{time.perf_counter() - self.started:7.1f}s[/] {msg}")

    def worker(self, task: str, label: str, **spec: Any) -> dict[str, Any]:
        """Run one measurement in a fresh process and return its JSON result."""
        return self.workers_together([(task, label, spec)])[0]

    def workers_together(self, jobs: Sequence[tuple[str, str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Run worker processes side by side (only for steps whose timing is not a bench figure)."""
        for d in ("specs", "logs", "results"):
            (self.work / d).mkdir(exist_ok=True)
        procs = []
        t0 = time.perf_counter()
        for task, label, spec in jobs:
            spec["result"] = str(self.work / "results" / f"{label}.json")
            spec_path = self.work / "specs" / f"{label}.json"
            spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
            self.say(f"{label} ...")
            with open(self.work / "logs" / f"{label}.log", "wb") as log:
                procs.append(subprocess.Popen([sys.executable, "-m", "evals.tools.bench_work", task, str(spec_path)],
                                              cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT))
        results = []
        for (_, label, spec), proc in zip(jobs, procs, strict=True):
            try:
                rc: int | str = proc.wait(timeout=max(1.0, self.cfg.timeout_s - (time.perf_counter() - t0)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                rc = "timeout"
            wall = time.perf_counter() - t0
            if rc != 0:
                for other in procs:
                    if other.poll() is None:
                        other.kill()
                        other.wait()
                tail = (self.work / "logs" / f"{label}.log").read_text(errors="replace")[-3000:]
                raise BenchError(f"bench step {label} failed ({rc}); log tail:\n{tail}")
            results.append(json.loads(Path(spec["result"]).read_text(encoding="utf-8")))
            self.workers.append({"step": label, "wall_s": round(wall, 2), "concurrent": len(jobs) > 1})
            self.say(f"{label} done in {wall:.1f}s")
        return results

    # -- steps ---------------------------------------------------------------------------------------------
    def import_hotpotqa(self) -> tuple[Path, Path, list[str]]:
        from evals.importers import run_import
        from evals.suite import load_suite

        sources = [self.hotpotqa / "questions.json", self.hotpotqa / "corpus.json"]
        missing = [str(p) for p in sources if not p.exists()]
        if missing:
            raise BenchError(f"{', '.join(missing)} not found: clone the project with ../shared beside it, "
                             "set CITEQA_SHARED_DIR, or pass --hotpotqa DIR")
        out = self.work / "hotpotqa"
        summary = run_import("hotpotqa", sources, out, limit=self.cfg.limit, force=True)
        suite = Path(summary["suite"])
        questions = [c.question for c in load_suite(suite).cases]
        self.say(f"imported HotpotQA: {summary['docs']} documents, {summary['cases']} questions")
        return Path(summary["docs_dir"]), suite, questions

    def citeqa_cmd(self) -> list[str]:
        exe = Path(sys.executable).parent / "citeqa"
        return [str(exe)] if exe.exists() else [sys.executable, "-m", "ui.cli"]

    def cold_start(self, question: str) -> dict[str, dict[str, Any]]:
        """Process start to printed answer, median of ``cold_runs`` per system, systems interleaved; one
        untimed run each first (outside --quick) so every system starts with the OS file cache warm."""
        cmds = {STOCK: [sys.executable, "-m", "evals.tools.bench_stock", "ask", question,
                        "--persist", str(self.work / "stock" / "hotpotqa")]}
        for e in EMBEDDERS:
            cmds[f"citeqa-{e}"] = [*self.citeqa_cmd(), "ask", question, "--data-dir",
                                   str(self.work / f"citeqa-{e}" / "hotpotqa"), "--collection", "hotpotqa",
                                   "--embedder", e]
        runs: dict[str, list[float]] = {s: [] for s in cmds}
        rounds = self.cfg.cold_runs + (0 if self.cfg.quick else 1)
        self.say(f"cold start x{self.cfg.cold_runs} ...")
        for r in range(rounds):
            for system, cmd in cmds.items():
                t0 = time.perf_counter()
                proc = subprocess.run(cmd, cwd=REPO, env=self.env(), capture_output=True, text=True,
                                      timeout=self.cfg.timeout_s)
                took = time.perf_counter() - t0
                if proc.returncode != 0 or not proc.stdout.strip():
                    raise BenchError(f"cold start of {system} failed ({proc.returncode}): {proc.stderr[-2000:]}")
                if r >= rounds - self.cfg.cold_runs:
                    runs[system].append(round(took, 3))
        self.say("cold start done")
        return {s: {"runs_s": v, "median_s": round(statistics.median(v), 3),
                    "command": " ".join(cmds[s][:3]) + " ..."} for s, v in runs.items()}

    def run(self) -> dict[str, Any]:
        cfg = self.cfg
        load_start = _loadavg()
        cpu_start = cpu_seconds()
        docs, suite, questions = self.import_hotpotqa()
        pool_path = str(self.work / "pool.npz")
        pool = self.worker("pool", "pool", docs=str(docs), pool=pool_path)

        systems: dict[str, dict[str, Any]] = {s: {} for s in SYSTEMS}
        spec_of = {STOCK: lambda what: {"system": STOCK, "persist": str(self.work / STOCK / what)}}
        for e in EMBEDDERS:
            spec_of[f"citeqa-{e}"] = lambda what, e=e: {"system": "citeqa", "embedder": e,
                                                        "data_dir": str(self.work / f"citeqa-{e}" / what)}
        for s in SYSTEMS:
            res = self.worker("ingest", f"ingest-{s}", docs=str(docs), suite=str(suite), **spec_of[s]("hotpotqa"))
            systems[s]["quality"] = res.pop("quality")
            systems[s]["ingest"] = res

        cold = self.cold_start(questions[0])
        for s in SYSTEMS:
            systems[s]["cold_start"] = cold[s]

        timed = [questions[i % len(questions)] for i in range(cfg.queries)]
        builds: dict[str, list[dict[str, Any]]] = {STOCK: [], "citeqa": []}
        have = 0
        for size in cfg.sizes:
            # one synthetic collection per pipeline, grown in place; both citeqa embedders query the same one
            # building is not a bench figure: the two pipelines' collections grow side by side
            jobs = [("build", f"build-{s}-{size}", {"pool": pool_path, "have": have,
                                                    "want": size, **spec})
                    for s, spec in ((STOCK, spec_of[STOCK]("synthetic")),
                                    ("citeqa", spec_of["citeqa-minilm"]("synthetic")))]
            for s, b in zip(builds, self.workers_together(jobs), strict=True):
                builds[s].append(b)
            have = size
            for s in SYSTEMS:
                spec = spec_of[s]("synthetic")
                if s != STOCK:
                    spec["data_dir"] = spec_of["citeqa-minilm"]("synthetic")["data_dir"]
                res = self.worker("query", f"query-{s}-{size}", questions=timed, warmup=cfg.warmup, k=cfg.k,
                                  size=size, **spec)
                # the same questions with the extractive answerer's evidence check (spaCy) off: its share
                off = self.worker("query", f"query-{s}-{size}-no-evidence-check", questions=timed,
                                  warmup=cfg.warmup, k=cfg.k, size=size, evidence_check=False, **spec)
                res["answer_without_evidence_check"] = off["answer"]
                systems[s].setdefault("latency", {})[str(size)] = res

        for s in SYSTEMS:
            systems[s]["metrics"] = flat_metrics(systems[s], cfg.sizes)
        result = {
            "format": FORMAT,
            "quick": cfg.quick,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "seconds": round(time.perf_counter() - self.started, 1),
            "machine": machine(load_start, cpu_start),
            "config": {**asdict(cfg), "hotpotqa": str(self.hotpotqa), "documents": systems[STOCK]["ingest"]
                       ["documents"], "characters": systems[STOCK]["ingest"]["characters"],
                       "questions": len(questions), "default_embedder": default_embedder()},
            "method": method_notes(),
            "systems": {s: {"label": LABELS[s], **systems[s]} for s in SYSTEMS},
            "synthetic": {"pool": pool, "builds": builds},
            "ratios": {s: ratios(systems[s]["metrics"], systems[STOCK]["metrics"]) for s in SYSTEMS if s != STOCK},
            "workers": self.workers,
        }
        result["targets"] = {s: targets(result, s) for s in SYSTEMS if s != STOCK}
        result["int8_decision"] = int8_decision(result)
        return result


# -- figures ---------------------------------------------------------------------------------------------------
LABELS = {
    STOCK: "LangChain stock: RecursiveCharacterTextSplitter(1000, 200) + HuggingFaceEmbeddings + Chroma, dense top-k",
    "citeqa-minilm": "citeqa, default settings, embedder minilm (float, sentence-transformers)",
    "citeqa-minilm-int8": "citeqa, default settings, embedder minilm-int8 (int8 ONNX, onnxruntime)",
}


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool
    fmt: str = "{:,.1f}"


def metric_defs(sizes: Sequence[int]) -> list[Metric]:
    out = [
        Metric("ingest_chars_per_s", "ingest, characters/s", True, "{:,.0f}"),
        Metric("ingest_chunks_per_s", "ingest, chunks/s", True),
        Metric("ingest_seconds", "ingest, seconds (model loaded)", False, "{:,.2f}"),
        Metric("ingest_peak_rss_mib", "ingest, peak RSS MiB", False, "{:,.0f}"),
        Metric("recall@5", "recall@5 (supporting paragraphs)", True, "{:.3f}"),
        Metric("mrr@10", "MRR@10", True, "{:.3f}"),
        Metric("dense_recall@5", "recall@5, dense only", True, "{:.3f}"),
        Metric("dense_mrr@10", "MRR@10, dense only", True, "{:.3f}"),
        Metric("cold_start_s", "cold start of ask, s (median)", False, "{:,.2f}"),
    ]
    for n in sizes:
        tag = f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else str(n)
        out += [
            Metric(f"retrieve_p50_ms@{n}", f"retrieve p50 ms @{tag}", False),
            Metric(f"retrieve_p95_ms@{n}", f"retrieve p95 ms @{tag}", False),
            Metric(f"answer_p50_ms@{n}", f"answer p50 ms @{tag}", False),
            Metric(f"answer_p95_ms@{n}", f"answer p95 ms @{tag}", False),
            Metric(f"answer_p50_ms_no_evidence_check@{n}", f"answer p50 ms @{tag}, evidence check off", False),
            Metric(f"ask_peak_rss_mib@{n}", f"ask path peak RSS MiB @{tag}", False, "{:,.0f}"),
        ]
    return out


def flat_metrics(sys_result: dict[str, Any], sizes: Sequence[int]) -> dict[str, float | None]:
    ing, q = sys_result["ingest"], sys_result["quality"]
    dense = q.get("dense_only", q["default"])  # the stock pipeline is dense only
    m: dict[str, float | None] = {
        "ingest_chars_per_s": ing["chars_per_s"],
        "ingest_chunks_per_s": ing["chunks_per_s"],
        "ingest_seconds": ing["seconds"],
        "ingest_peak_rss_mib": ing["peak_rss_mib"],
        "recall@5": q["default"]["recall@5"],
        "mrr@10": q["default"]["mrr@10"],
        "dense_recall@5": dense["recall@5"],
        "dense_mrr@10": dense["mrr@10"],
        "cold_start_s": sys_result["cold_start"]["median_s"],
    }
    for n in sizes:
        lat = sys_result["latency"][str(n)]
        m[f"retrieve_p50_ms@{n}"] = lat["retrieve"]["p50_ms"]
        m[f"retrieve_p95_ms@{n}"] = lat["retrieve"]["p95_ms"]
        m[f"answer_p50_ms@{n}"] = lat["answer"]["p50_ms"]
        m[f"answer_p95_ms@{n}"] = lat["answer"]["p95_ms"]
        m[f"answer_p50_ms_no_evidence_check@{n}"] = lat.get("answer_without_evidence_check", {}).get("p50_ms")
        m[f"ask_peak_rss_mib@{n}"] = lat["peak_rss_mib"]
    return m


def ratios(mine: dict[str, float | None], stock: dict[str, float | None]) -> dict[str, float | None]:
    """citeqa / stock per metric (>1 is better for throughput and quality, <1 for time and memory)."""
    return {k: (round(v / stock[k], 3) if v is not None and stock.get(k) else None) for k, v in mine.items()}


def _target(name: str, value: float | None, op: str, bound: float | None) -> dict[str, Any]:
    met = None
    if value is not None and bound is not None:
        met = value >= bound if op == ">=" else value <= bound if op == "<=" else value < bound
    return {"target": name, "value": value, "op": op, "bound": bound, "met": met}


def targets(result: dict[str, Any], system: str) -> list[dict[str, Any]]:
    """The issue's targets, for one citeqa configuration (value None where this run has no such figure)."""
    m = result["systems"][system]["metrics"]
    stock = result["systems"][STOCK]["metrics"]
    r = result["ratios"][system]
    return [
        _target("ingest characters/s >= 3x stock", r["ingest_chars_per_s"], ">=", 3.0),
        _target("recall@5 not lower than stock's", m["recall@5"], ">=", stock["recall@5"]),
        _target("hybrid recall@5 >= 0.90", m["recall@5"], ">=", 0.90),
        _target("hybrid MRR@10 >= 0.93", m["mrr@10"], ">=", 0.93),
        _target("answer p50 <= 50 ms at 10k chunks", m.get("answer_p50_ms@10000"), "<=", 50.0),
        _target("answer p50 <= 150 ms at 100k chunks", m.get("answer_p50_ms@100000"), "<=", 150.0),
        _target("cold start of citeqa ask <= 3 s", m["cold_start_s"], "<=", 3.0),
        _target("ask path memory at 100k chunks < 2 GiB", m.get("ask_peak_rss_mib@100000"), "<", 2048.0),
    ]


def int8_decision(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's rule: minilm-int8 becomes the default only if it is faster and its retrieval quality is within
    1% (relative) of the float model's. Faster: lower cold start and lower answer p50 at the largest size, with
    ingest throughput at least the float model's less a 5% noise band (both do float32 arithmetic, see
    rag/embeddings.py). Quality: recall@5 and MRR@10 of the default (hybrid) retrieval."""
    f = result["systems"]["citeqa-minilm"]["metrics"]
    i = result["systems"]["citeqa-minilm-int8"]["metrics"]
    largest = max(result["config"]["sizes"])
    answer = f"answer_p50_ms@{largest}"

    def within(key: str) -> bool | None:
        if f[key] is None or i[key] is None:
            return None
        return i[key] >= f[key] * (1 - INT8_QUALITY_TOLERANCE)

    speed = {
        "ingest_chars_per_s": {"minilm": f["ingest_chars_per_s"], "minilm-int8": i["ingest_chars_per_s"],
                               "ok": i["ingest_chars_per_s"] >= 0.95 * f["ingest_chars_per_s"]},
        "cold_start_s": {"minilm": f["cold_start_s"], "minilm-int8": i["cold_start_s"],
                         "ok": i["cold_start_s"] < f["cold_start_s"]},
        answer: {"minilm": f[answer], "minilm-int8": i[answer], "ok": i[answer] < f[answer]},
    }
    faster = all(v["ok"] for v in speed.values())
    quality = {k: {"minilm": f[k], "minilm-int8": i[k], "within_1pct": within(k)}
               for k in ("recall@5", "mrr@10", "dense_recall@5", "dense_mrr@10")}
    ok = faster and bool(quality["recall@5"]["within_1pct"]) and bool(quality["mrr@10"]["within_1pct"])
    return {
        "rule": "faster (lower cold start and answer p50 at the largest size; ingest characters/s at least 95% of "
                "the float model's) and recall@5 and MRR@10 of the default hybrid retrieval >= 99% of the float "
                "model's",
        "faster": faster,
        "speed": speed,
        "quality": quality,
        "recommend_int8_default": ok,
        "current_default": result["config"]["default_embedder"],
        "quick_run_figures_mean_nothing": result["quick"],
    }


def method_notes() -> dict[str, str]:

    return {
        "ingest": "HotpotQA-100's corpus imported with `citeqa eval import hotpotqa` (one .txt per title: title, blank "
                  "line, sentences). Each pipeline ingests the folder into an empty persistent store in its own "
                  "process, with the model already loaded (model load time reported apart). characters/s = characters "
                  "of document text / ingest seconds (the same numerator for all); chunks/s uses each pipeline's "
                  "own chunks.",
        "quality": "recall@5 and MRR@10 of the supporting-paragraph titles (evals.metrics; positions are chunks, a "
                   "title found again lower down earns nothing). citeqa: retrieve(q, 5) and retrieve(q, 10) with its "
                   "default (hybrid) settings, without the second retrieval round (--no-expand), and with hybrid "
                   "off (dense only). stock: similarity_search(q, 10).",
        "cold_start": "wall time of a fresh process from start to exit after printing: `citeqa ask QUESTION` on the "
                      "HotpotQA collection for citeqa; `python -m evals.tools.bench_stock ask` (load the embeddings, "
                      "open the Chroma store, similarity_search k=4, print) for stock. Median of the runs, systems "
                      "interleaved, after one untimed run each (outside --quick).",
        "synthetic": "latency collections: every sentence of the HotpotQA documents is embedded once (minilm-int8); a "
                     "seeded stream walks random documents sentence by sentence and cuts chunks of each pipeline's own "
                     "size (stock: <= 1000 characters; citeqa: <= its chunk_size word pieces); a chunk's vector is the "
                     "length-weighted mean of its sentences' real vectors, L2-normalised (evals/tools/bench_synth.py). "
                     "The model never embeds the 100k chunks; queries and the answerer use the real model. Stock "
                     "collections are filled through langchain_chroma's add_texts; citeqa's through ChromaStore.upsert "
                     "+ BM25Index.add/save (what the ingest runner does per batch, minus the model). Each collection "
                     "grows 1k -> 10k -> 100k in place; the two pipelines' builds run side by side (build time is not "
                     "a bench figure). Quality is not measured on it.",
        "latency": "a fresh process per system and size opens the collection, answers `warmup` untimed questions, "
                   "then times each HotpotQA question: retrieve = top-5 (citeqa: Citeqa.retrieve, hybrid; stock: "
                   "similarity_search) and answer = Citeqa.ask (retrieve + extractive answer). The stock pipeline "
                   "has no answerer: its answer = its top-5 + citeqa's ExtractiveAnswerer on the float model. A second "
                   "process per system and size times the same answers with the answerer's evidence check (spaCy, "
                   "rag.answer_check) off, so its share of the answer time is seen.",
        "memory": "peak RSS (getrusage ru_maxrss) of each measuring process: ingest, and the ask path at each size "
                  "(model, store, index, the timed questions).",
    }


def default_embedder() -> str:
    from rag.settings import Settings

    return str(Settings.model_fields["embedder"].default)


def cpu_seconds() -> dict[str, float] | None:
    """CPU seconds used so far by the whole machine (/proc/stat) and by this process and its finished children."""
    import resource

    try:
        fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        tick = float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None
    busy = sum(fields) - fields[3] - (fields[4] if len(fields) > 4 else 0.0)  # all but idle and iowait
    own = sum(r.ru_utime + r.ru_stime for r in (resource.getrusage(resource.RUSAGE_SELF),
                                                  resource.getrusage(resource.RUSAGE_CHILDREN)))
    return {"machine": busy / tick, "own": own, "wall": time.perf_counter()}


def other_cpu_share(start: dict[str, float] | None, end: dict[str, float] | None) -> float | None:
    """The share of the machine's CPU time that processes other than the bench used while it ran."""
    if not start or not end:
        return None
    wall = end["wall"] - start["wall"]
    other = (end["machine"] - start["machine"]) - (end["own"] - start["own"])
    return round(max(0.0, other) / (wall * (os.cpu_count() or 1)), 3) if wall > 0 else None


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine(load_start: list[float] | None, cpu_start: dict[str, float] | None = None) -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    from evals.report import versions

    load_end = _loadavg()
    cpus = os.cpu_count() or 1
    # Other work on the machine: the CPU time that processes other than the bench and its workers used while it
    # ran (the load average would count the bench's own parallel steps). Without /proc/stat: the load averages.
    other = other_cpu_share(cpu_start, cpu_seconds())
    if other is not None:
        busy = other > 0.1
    else:
        busy = any(la is not None and la[0] > 0.5 * cpus + 1 for la in (load_start, load_end))
    return {"cpus": cpus, "cpu": cpu, "memory_gib": mem, "platform": platform.platform(terse=True),
            "python": platform.python_version(), "load_average_start": load_start, "load_average_end": load_end,
            "other_cpu_share": other, "busy": busy, "versions": versions()}


# -- output ----------------------------------------------------------------------------------------------------
def _fmt(metric: Metric, v: float | None) -> str:
    return "-" if v is None else metric.fmt.format(v)


def _ratio(metric: Metric, v: float | None) -> str:
    if v is None:
        return "-"
    good = v >= 1 if metric.higher_is_better else v <= 1
    return f"{v:.2f}x" + ("" if good else " (worse)")


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for metric in metric_defs(result["config"]["sizes"]):
        row = [metric.label, _fmt(metric, result["systems"][STOCK]["metrics"][metric.key])]
        for s in SYSTEMS[1:]:
            row += [_fmt(metric, result["systems"][s]["metrics"][metric.key]),
                    _ratio(metric, result["ratios"][s][metric.key])]
        rows.append(row)
    return rows


BUSY_NOTE = " (BUSY: other work ran beside the bench, the figures are unreliable)"
HEADERS = ["metric", "stock", "citeqa minilm", "/stock", "citeqa minilm-int8", "/stock"]


def render_markdown(result: dict[str, Any]) -> str:
    mach = result["machine"]
    lines = [
        "# citeqa bench" + (" (--quick: tiny sizes, figures mean nothing)" if result["quick"] else ""),
        "",
        f"{result['finished_at']}, {mach['cpus']} CPUs ({mach['cpu']}), {mach['memory_gib']} GiB, "
        f"{mach['platform']}; load average at start {mach['load_average_start']}, at end "
        f"{mach['load_average_end']}; CPU share used by other processes while it ran: "
        f"{mach.get('other_cpu_share')}{BUSY_NOTE if mach['busy'] else ''}"
        f"; {result['seconds']:.0f} s in all. HotpotQA: {result['config']['documents']} "
        f"documents, {result['config']['characters']:,} characters, {result['config']['questions']} questions. "
        f"Default embedder: {result['config']['default_embedder']}.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "---|" * len(HEADERS),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(result)]
    lines += ["", "## Retrieval on HotpotQA-100, by variant", "", "| system | variant | recall@5 | MRR@10 |",
              "|---|---|---|---|"]
    for s in SYSTEMS:
        for variant, q in result["systems"][s]["quality"].items():
            lines.append(f"| {s} | {variant} | {q['recall@5']} | {q['mrr@10']} |")
    lines += ["", "## Targets (issue 6)", "", "| target | citeqa minilm | citeqa minilm-int8 |", "|---|---|---|"]
    for a, b in zip(*(result["targets"][s] for s in SYSTEMS[1:]), strict=True):
        lines.append(f"| {a['target']} | {_met(a)} | {_met(b)} |")
    d = result["int8_decision"]
    lines += ["", "## minilm-int8 as the default?", "",
              f"Rule: {d['rule']}.", "",
              f"Faster: {d['faster']} ("
              + "; ".join(f"{k}: minilm {v['minilm']} vs int8 {v['minilm-int8']}" for k, v in d["speed"].items())
              + "). Quality: "
              + "; ".join(f"{k}: minilm {v['minilm']} vs int8 {v['minilm-int8']} (within 1%: {v['within_1pct']})"
                          for k, v in d["quality"].items())
              + f". **Recommend int8 default: {d['recommend_int8_default']}**.", "", "## Method", ""]
    lines += [f"- **{k}**: {v}" for k, v in result["method"].items()]
    lines += ["", "Systems:", ""] + [f"- `{s}`: {result['systems'][s]['label']}" for s in SYSTEMS]
    return "\n".join(lines) + "\n"


def _met(t: dict[str, Any]) -> str:
    if t["value"] is None:
        return "n/a in this run"
    v = t["value"]
    return f"{v:,.3g} {'met' if t['met'] else 'NOT met'} ({t['op']} {t['bound']:,.3g})"


def print_table(result: dict[str, Any], console: Any) -> None:
    from rich.table import Table

    mach = result["machine"]
    title = (f"citeqa bench{' --quick' if result['quick'] else ''}: {mach['cpus']} CPUs, load "
             f"{mach['load_average_start']} -> {mach['load_average_end']}{' BUSY' if mach['busy'] else ''}, "
             f"{result['seconds']:.0f} s")
    table = Table(title=title)
    for h in HEADERS:
        table.add_column(h, justify="left" if h == "metric" else "right")
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)
    d = result["int8_decision"]
    console.print(f"minilm-int8 as the default: faster={d['faster']}, recall@5 within 1%="
                  f"{d['quality']['recall@5']['within_1pct']}, MRR@10 within 1%={d['quality']['mrr@10']['within_1pct']}"
                  f" -> recommend: [bold]{d['recommend_int8_default']}[/]")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evals.tools.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for bench.json and bench.md")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the harness (figures mean nothing)")
    parser.add_argument("--sizes", type=lambda s: tuple(int(x) for x in s.split(",")), default=None,
                        help="synthetic collection sizes, e.g. 1000,10000,100000")
    parser.add_argument("--queries", type=int, default=None, help="timed questions per size and system")
    parser.add_argument("--hotpotqa", type=Path, default=datasets_dir() / "hotpotqa-100",
                        help="folder with questions.json and corpus.json")
    parser.add_argument("--work", type=Path, default=None, help="working folder (kept); default: a temporary one")
    args = parser.parse_args(argv)

    from rich.console import Console

    cfg = Config.make(args.quick)
    if args.sizes:
        cfg.sizes = tuple(sorted(set(args.sizes)))
    if args.queries:
        cfg.queries = args.queries
    if any(n < 1 for n in cfg.sizes) or cfg.queries < 1:
        parser.error("--sizes and --queries must be positive")
    work = args.work or Path(tempfile.mkdtemp(prefix="citeqa-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    try:
        result = Bench(cfg, work, args.hotpotqa, console).run()
    except BenchError as exc:
        console.print(f"bench: error: {exc}", markup=False)
        return 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    (args.out / "bench.md").write_text(render_markdown(result), encoding="utf-8")
    print_table(result, Console())
    console.print(f"wrote {args.out / 'bench.json'} and {args.out / 'bench.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
