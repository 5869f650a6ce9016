"""A failure of a chat model call (timeout, refused key, unknown model, unreachable server...) as one
``BackendError`` line naming the backend, its URL or path, and the fix."""

from __future__ import annotations

import re
from typing import Any

from rag.errors import BackendError
from rag.llm_spec import _WHERE, LlmSpec


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def backend_error(exc: BaseException, spec: LlmSpec | None, name: str = "llm") -> BackendError:
    """Translate a failure of a chat model call into one line naming the backend, its URL or path, and the fix."""
    if isinstance(exc, BackendError):
        return exc
    if spec is None:
        return BackendError(f"{name} backend failed: {_one_line(f'{type(exc).__name__}: {exc}')}")
    who = f"{spec.kind} backend at {spec.where}" if spec.kind != "llamacpp" else f"llamacpp backend ({spec.where})"
    fix = f"fix {_WHERE}"
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx comes with langchain
        httpx = None  # type: ignore[assignment]
    openai_mod: Any
    try:
        import openai as openai_mod
    except ImportError:  # pragma: no cover
        openai_mod = None
    ollama_mod: Any
    try:
        import ollama as ollama_mod
    except ImportError:  # pragma: no cover
        ollama_mod = None

    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 5:
        chain.append(e)
        e = e.__cause__ or e.__context__

    def any_of(*types: Any) -> BaseException | None:
        types = tuple(t for t in types if isinstance(t, type))
        return next((x for x in chain if types and isinstance(x, types)), None)

    timeout_types = [TimeoutError]
    if httpx is not None:
        timeout_types.append(httpx.TimeoutException)
    if openai_mod is not None:
        timeout_types.append(openai_mod.APITimeoutError)
    if any_of(*timeout_types):
        return BackendError(
            f"{who} did not answer in time (the llm_timeout setting): check the server, use a smaller model, "
            "or raise CITEQA_LLM_TIMEOUT (seconds)"
        )
    if spec.kind == "ollama" and ollama_mod is not None:
        re_ = any_of(ollama_mod.ResponseError)
        if re_ is not None:
            status = getattr(re_, "status_code", None)
            if status == 404 or "not found" in str(re_).lower():
                return BackendError(
                    f"{who} has no model '{spec.model}': run `ollama pull {spec.model}` or {fix}"
                )
            return BackendError(f"{who} answered with an error (HTTP {status}): {_one_line(str(re_), 160)}")
    if openai_mod is not None:
        st = any_of(openai_mod.APIStatusError)
        if st is not None:
            status = getattr(st, "status_code", None)
            detail = _one_line(getattr(st, "message", "") or str(st), 160)
            if status in (401, 403):
                return BackendError(f"{who} refused the API key (HTTP {status}): set OPENAI_API_KEY")
            if status == 404:
                return BackendError(
                    f"{who} has no model '{spec.model}' or the URL is not an OpenAI-compatible /v1 base "
                    f"(HTTP 404: {detail}): {fix}"
                )
            if status == 400 and re.search(r"context|too long|exceed", detail, re.I):
                return BackendError(f"{who} rejected the prompt as too long ({detail}): lower --k")
            return BackendError(f"{who} answered with an error (HTTP {status}: {detail})")
    conn_types: list[Any] = [ConnectionError]
    if httpx is not None:
        conn_types += [httpx.ConnectError, httpx.RemoteProtocolError, httpx.NetworkError]
    if openai_mod is not None:
        conn_types.append(openai_mod.APIConnectionError)
    if any_of(*conn_types):
        start = "start the server (`ollama serve`)" if spec.kind == "ollama" else "start the server"
        return BackendError(f"{who} is unreachable (connection refused or dropped): {start} or {fix}")
    if spec.kind == "llamacpp" and re.search(r"exceed context window|context", str(exc), re.I):
        return BackendError(f"{who}: the prompt does not fit the model's context ({_one_line(str(exc), 120)}): "
                            "lower --k")
    return BackendError(f"{who} failed: {_one_line(f'{type(exc).__name__}: {exc}', 200)}")
