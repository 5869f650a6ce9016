"""A failure of a chat model call (timeout, refused key, unknown model, unreachable server...) as one
``BackendError`` line naming the backend, its URL or path, and the fix.

Each kind of failure has a matcher (``_MATCHERS``, tried in order on the exception and its causes); the first
that recognises the failure words the line, and anything none recognises is "failed: <the exception>"."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rag.errors import BackendError
from rag.llm_spec import _WHERE, LlmSpec


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _optional(name: str) -> Any:
    """The module ``name``, or None when it is not installed (httpx comes with langchain, the clients with
    their backends)."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:  # pragma: no cover
        return None


@dataclass(frozen=True)
class _Failure:
    """A failed call as the matchers see it: the exception and its first causes, the backend, and the client
    modules that are installed (None when not)."""

    exc: BaseException
    chain: tuple[BaseException, ...]
    spec: LlmSpec
    who: str
    fix: str
    httpx: Any
    openai: Any
    ollama: Any

    def find(self, *types: Any) -> BaseException | None:
        """The first exception of the chain that is one of ``types`` (anything not a class is ignored)."""
        types = tuple(t for t in types if isinstance(t, type))
        return next((x for x in self.chain if types and isinstance(x, types)), None)


def _chain(exc: BaseException, limit: int = 5) -> tuple[BaseException, ...]:
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < limit:
        chain.append(e)
        e = e.__cause__ or e.__context__
    return tuple(chain)


def _timed_out(f: _Failure) -> BackendError | None:
    types: list[Any] = [TimeoutError]
    if f.httpx is not None:
        types.append(f.httpx.TimeoutException)
    if f.openai is not None:
        types.append(f.openai.APITimeoutError)
    if not f.find(*types):
        return None
    return BackendError(
        f"{f.who} did not answer in time (the llm_timeout setting): check the server, use a smaller model, "
        "or raise CITEQA_LLM_TIMEOUT (seconds)"
    )


def _ollama_refused(f: _Failure) -> BackendError | None:
    if f.spec.kind != "ollama" or f.ollama is None:
        return None
    err = f.find(f.ollama.ResponseError)
    if err is None:
        return None
    status = getattr(err, "status_code", None)
    if status == 404 or "not found" in str(err).lower():
        return BackendError(f"{f.who} has no model '{f.spec.model}': run `ollama pull {f.spec.model}` or {f.fix}")
    return BackendError(f"{f.who} answered with an error (HTTP {status}): {_one_line(str(err), 160)}")


def _openai_refused(f: _Failure) -> BackendError | None:
    if f.openai is None:
        return None
    err = f.find(f.openai.APIStatusError)
    if err is None:
        return None
    status = getattr(err, "status_code", None)
    detail = _one_line(getattr(err, "message", "") or str(err), 160)
    if status in (401, 403):
        return BackendError(f"{f.who} refused the API key (HTTP {status}): set OPENAI_API_KEY")
    if status == 404:
        return BackendError(
            f"{f.who} has no model '{f.spec.model}' or the URL is not an OpenAI-compatible /v1 base "
            f"(HTTP 404: {detail}): {f.fix}"
        )
    if status == 400 and re.search(r"context|too long|exceed", detail, re.I):
        return BackendError(f"{f.who} rejected the prompt as too long ({detail}): lower --k")
    return BackendError(f"{f.who} answered with an error (HTTP {status}: {detail})")


def _unreachable(f: _Failure) -> BackendError | None:
    types: list[Any] = [ConnectionError]
    if f.httpx is not None:
        types += [f.httpx.ConnectError, f.httpx.RemoteProtocolError, f.httpx.NetworkError]
    if f.openai is not None:
        types.append(f.openai.APIConnectionError)
    if not f.find(*types):
        return None
    start = "start the server (`ollama serve`)" if f.spec.kind == "ollama" else "start the server"
    return BackendError(f"{f.who} is unreachable (connection refused or dropped): {start} or {f.fix}")


def _llamacpp_context(f: _Failure) -> BackendError | None:
    if f.spec.kind != "llamacpp" or not re.search(r"exceed context window|context", str(f.exc), re.I):
        return None
    return BackendError(f"{f.who}: the prompt does not fit the model's context ({_one_line(str(f.exc), 120)}): "
                        "lower --k")


_MATCHERS: tuple[Callable[[_Failure], BackendError | None], ...] = (
    _timed_out, _ollama_refused, _openai_refused, _unreachable, _llamacpp_context,
)


def backend_error(exc: BaseException, spec: LlmSpec | None, name: str = "llm") -> BackendError:
    """Translate a failure of a chat model call into one line naming the backend, its URL or path, and the fix."""
    if isinstance(exc, BackendError):
        return exc
    if spec is None:
        return BackendError(f"{name} backend failed: {_one_line(f'{type(exc).__name__}: {exc}')}")
    who = f"{spec.kind} backend at {spec.where}" if spec.kind != "llamacpp" else f"llamacpp backend ({spec.where})"
    failure = _Failure(exc, _chain(exc), spec, who, f"fix {_WHERE}",
                       _optional("httpx"), _optional("openai"), _optional("ollama"))
    for matcher in _MATCHERS:
        err = matcher(failure)
        if err is not None:
            return err
    return BackendError(f"{who} failed: {_one_line(f'{type(exc).__name__}: {exc}', 200)}")
