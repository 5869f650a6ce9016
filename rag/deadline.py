"""One deadline per backend call: every connect, write and read of a server backend's HTTP client waits at most
until the call's deadline (its retries and stream included), and chat models are wrapped to set it."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time
from collections.abc import Iterator
from typing import Any

# httpx's timeout bounds each socket operation, and the OpenAI client retries: a server that accepts and never
# answers held a call for twice llm_timeout, one that trickles bytes for ever. Instead every call of a server
# backend gets one deadline, llm_timeout from its start, and every connect, write and read of its HTTP client
# waits at most until then (retries included: once it has passed they fail at once).
_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("citeqa_llm_deadline", default=None)
_LATE = "the call ran past its deadline (llm_timeout)"


def _left(timeout: float | None, late: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of the current call's deadline (``late`` is raised once it has passed)."""
    deadline = _DEADLINE.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise late(_LATE)
    return left if timeout is None else min(timeout, left)


@contextlib.contextmanager
def call_deadline(deadline: float) -> Iterator[None]:
    """While open, the deadline-bound HTTP clients of this thread give up at ``deadline`` (time.monotonic())."""
    token = _DEADLINE.set(deadline)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


@functools.cache
def _deadline_backend() -> type:
    import httpcore

    class DeadlineStream(httpcore.NetworkStream):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
            return self._inner.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

        def write(self, buffer: bytes, timeout: float | None = None) -> None:
            self._inner.write(buffer, _left(timeout, httpcore.WriteTimeout))

        def close(self) -> None:
            self._inner.close()

        def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                      timeout: float | None = None) -> Any:
            tls = self._inner.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout))
            return DeadlineStream(tls)

        def get_extra_info(self, info: str) -> Any:
            return self._inner.get_extra_info(info)

    class DeadlineBackend(httpcore.NetworkBackend):
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                        socket_options: Any = None) -> Any:
            return DeadlineStream(self._inner.connect_tcp(
                host, port, _left(timeout, httpcore.ConnectTimeout), local_address, socket_options))

        def connect_unix_socket(self, path: str, timeout: float | None = None, socket_options: Any = None) -> Any:
            return DeadlineStream(self._inner.connect_unix_socket(
                path, _left(timeout, httpcore.ConnectTimeout), socket_options))

        def sleep(self, seconds: float) -> None:
            self._inner.sleep(seconds)

    return DeadlineBackend


def deadline_transport() -> Any:
    """An ``httpx.HTTPTransport`` whose connections honour the current call's deadline (see call_deadline)."""
    import httpx

    transport = httpx.HTTPTransport()
    pool = transport._pool  # httpx exposes no network-backend option; swapped before any connection exists
    pool._network_backend = _deadline_backend()(pool._network_backend)
    return transport


@functools.cache
def _bounded(base: type) -> type:
    """``base`` (a LangChain chat model class) whose every call runs under one deadline of ``call_timeout`` s."""

    class Bounded(base):  # type: ignore[valid-type, misc]
        call_timeout: float = 120.0

        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            with call_deadline(time.monotonic() + self.call_timeout):
                return super()._generate(*args, **kwargs)

        def _stream(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
            deadline = time.monotonic() + self.call_timeout
            parts = super()._stream(*args, **kwargs)
            try:
                while True:
                    with call_deadline(deadline):  # set around each step only: the caller runs between them
                        chunk = next(parts, None)
                    if chunk is None:
                        return
                    yield chunk
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"generation took longer than {self.call_timeout:g} s")
            finally:
                parts.close()

    Bounded.__name__ = Bounded.__qualname__ = f"Bounded{base.__name__}"
    return Bounded
