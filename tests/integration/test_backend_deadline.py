"""One deadline per backend call (issue 12): against a server that accepts and never answers, or one that streams
for ever, a call of the openai or ollama backend gives up at llm_timeout, its retry included, with the one-line
"did not answer in time" error. (httpx's own timeout is per socket operation: before, the OpenAI client's
retry made it twice llm_timeout, and an endless stream never stopped.)"""

from __future__ import annotations

import time

import pytest

from rag.deadline import _DEADLINE
from rag.llm import backend_error, make_chat_model, parse_llm_spec
from rag.settings import load_settings
from tests.integration.listeners import EndlessStream, SilentListener

pytestmark = pytest.mark.integration
TIMEOUT = 1.5
SLACK = 1.2  # the OpenAI client's retry back-off (~0.5-1 s) plus scheduling on a busy machine


def _spec(kind: str, port: int) -> str:
    return f"openai:m@http://127.0.0.1:{port}/v1" if kind == "openai" else f"ollama:m@127.0.0.1:{port}"


def _fail(spec: str, how: str) -> tuple[float, str, int]:
    """Call the backend; returns (seconds it took, the BackendError line, pieces streamed before it)."""
    model = make_chat_model(spec, load_settings(llm=spec, llm_timeout=TIMEOUT))
    pieces = 0
    t0 = time.monotonic()
    try:
        if how == "invoke":
            model.invoke("hi")
        else:
            for _ in model.stream("hi"):
                pieces += 1
    except Exception as exc:
        took = time.monotonic() - t0
        return took, str(backend_error(exc, parse_llm_spec(spec))), pieces
    raise AssertionError(f"{spec} {how} returned instead of timing out")


@pytest.mark.parametrize("how", ["invoke", "stream"])
@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_a_server_that_never_answers_costs_one_timeout(kind: str, how: str) -> None:
    with SilentListener() as silent:
        took, msg, _ = _fail(_spec(kind, silent.port), how)
        assert "did not answer in time" in msg, msg
        assert TIMEOUT - 0.2 <= took <= TIMEOUT + SLACK, f"{kind} {how} took {took:.2f} s for a {TIMEOUT} s timeout"
        # the request did reach the listener (so the time was spent waiting for it) and, for openai, the retry
        # found the deadline passed and never opened a second connection
        assert b"POST" in silent.received and silent.connections == 1
    assert _DEADLINE.get() is None, "the deadline does not outlive the call"


@pytest.mark.parametrize("kind", ["openai", "ollama"])
def test_a_stream_that_never_ends_is_cut_at_the_deadline(kind: str) -> None:
    with EndlessStream(every=0.2) as endless:
        took, msg, pieces = _fail(_spec(kind, endless.port), "stream")
    assert "did not answer in time" in msg, msg
    assert pieces >= 2, "the stream was read (pieces arrived) until the deadline"
    assert TIMEOUT - 0.2 <= took <= TIMEOUT + SLACK, f"{kind} stream took {took:.2f} s for a {TIMEOUT} s timeout"


def test_a_slow_non_streamed_reply_is_cut_at_the_deadline() -> None:
    """invoke() reads the whole endless body: every read waits at most until the deadline, whatever arrives."""
    with EndlessStream(every=0.2) as endless:
        took, msg, _ = _fail(_spec("ollama", endless.port), "invoke")
    assert "did not answer in time" in msg, msg
    assert took <= TIMEOUT + SLACK, took
