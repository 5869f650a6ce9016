"""Answer backends: the ``llm`` setting parsed into a spec, the LangChain chat model for it (with a timeout and a
bound on the tokens it may generate), backend failures turned into one-line ``BackendError``s, and
``make_answerer`` which picks the extractive or the generative answerer.

Specs::

    extractive                       the default, no LLM
    llamacpp:PATH.gguf               in-process llama.cpp (the optional extra: pip install 'citeqa[llamacpp]')
    ollama:MODEL[@host:port]         an Ollama server (default $OLLAMA_HOST or 127.0.0.1:11434)
    openai:MODEL[@BASE_URL]          any OpenAI-compatible server (llama.cpp server, vLLM, LM Studio, OpenAI);
                                     the key comes from $OPENAI_API_KEY (a dummy one for local servers)

Heavy imports (langchain integrations, llama_cpp) happen inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import BackendError, ConfigError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from rag.interfaces import Answerer, Embedder
    from rag.settings import Settings

KINDS = ("extractive", "llamacpp", "ollama", "openai")
OLLAMA_DEFAULT = "http://127.0.0.1:11434"
OPENAI_DEFAULT = "https://api.openai.com/v1"
REWRITE_MAX_TOKENS = 64  # a standalone question is short; bounds the rewrite call
LLAMACPP_N_CTX = 8192  # prompt (k passages) + answer; Gemma 3 270M reads up to 32k
INSTALL_LLAMACPP = "pip install 'citeqa[llamacpp]'"
_WHERE = "--llm / CITEQA_LLM"
_HOSTPORT = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:.]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class LlmSpec:
    """A parsed ``llm`` setting. ``model`` is the model name, or the GGUF path for ``llamacpp``; ``url`` is the
    server (Ollama host URL, OpenAI-compatible base URL), None for in-process and extractive."""

    kind: str
    model: str
    url: str | None
    raw: str

    @property
    def where(self) -> str:
        """What the backend is, for messages: the URL of a server or the path of a GGUF file."""
        if self.kind == "llamacpp":
            return self.model
        return self.url or "(no server)"

    def describe(self) -> str:
        if self.kind == "extractive":
            return "extractive backend"
        if self.kind == "llamacpp":
            return f"llamacpp backend ({self.model})"
        return f"{self.kind} backend (model '{self.model}' at {self.url})"


def _bad(raw: str, why: str) -> ConfigError:
    return ConfigError(f"bad setting llm ({_WHERE}) = {raw!r}: {why}")


def _host_url(hostport: str, raw: str) -> str:
    """``host:port`` or ``http(s)://host:port[/path]`` -> a URL without trailing slash."""
    value = hostport.strip().rstrip("/")
    if re.match(r"^https?://", value):
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        try:
            port = parts.port
        except ValueError:
            raise _bad(raw, f"bad port in {value!r}") from None
        if not parts.hostname:
            raise _bad(raw, f"no host in {value!r}")
        if port is not None and not 0 < port < 65536:
            raise _bad(raw, f"port out of range in {value!r}")
        return value
    host, slash, path = value.partition("/")
    m = _HOSTPORT.match(host)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise _bad(raw, f"expected host:port (e.g. 127.0.0.1:11434) or an http:// URL after '@', got {value!r}")
    return f"http://{host}{slash}{path}"


def parse_llm_spec(spec: str) -> LlmSpec:
    """Parse the ``llm`` setting; a malformed one raises ConfigError naming the setting and the fix."""
    raw = (spec or "").strip()
    if raw == "extractive":
        return LlmSpec("extractive", "", None, raw)
    kind, sep, rest = raw.partition(":")
    if kind not in KINDS or kind == "extractive":
        raise _bad(raw, "must be extractive, llamacpp:PATH.gguf, ollama:MODEL[@host:port] or openai:MODEL@BASE_URL")
    rest = rest.strip()
    if not sep or not rest:
        raise _bad(raw, f"'{kind}:' needs a model after the colon, e.g. {kind}:NAME")
    if kind == "llamacpp":
        return LlmSpec(kind, str(Path(rest).expanduser()), None, raw)
    model, at, where = rest.partition("@")
    model = model.strip()
    if not model:
        raise _bad(raw, f"'{kind}:' needs a model name before '@'")
    if at and not where.strip():
        raise _bad(raw, "nothing after '@': give the server, e.g. 127.0.0.1:11434 or http://127.0.0.1:8080/v1")
    if kind == "ollama":
        url = _host_url(where, raw) if at else _host_url(os.environ.get("OLLAMA_HOST") or OLLAMA_DEFAULT, raw)
        return LlmSpec(kind, model, url, raw)
    url = _host_url(where, raw) if at else (os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT).rstrip("/")
    return LlmSpec(kind, model, url, raw)


# -- errors --------------------------------------------------------------------------------------------------
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


# -- llama.cpp in process -------------------------------------------------------------------------------------
_LLAMAS: dict[tuple[str, int, int, str], Any] = {}
_LLAMAS_LOCK = threading.Lock()
_CALL_LOCKS: dict[int, threading.Lock] = {}


def llamacpp_threads() -> int:
    """Threads for in-process llama.cpp: half the cores (llama.cpp's spinning threads hurt on busy machines)."""
    env = os.environ.get("CITEQA_LLAMACPP_THREADS")
    if env and env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, (os.cpu_count() or 2) // 2)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 (native code writes there directly) for the duration."""
    try:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def without_extra_buffers(default_params: Any) -> Any:
    """``llama_model_default_params`` wrapped to answer ``use_extra_bufts = False``: no weight repacking into
    llama.cpp's extra buffer types, where its AMX kernels live (they crash on the first decode on Sapphire Rapids).
    ``Llama`` reads its model parameters from that function, so wrapping it is how the switch reaches it."""

    def params() -> Any:
        p = default_params()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    return params


@contextlib.contextmanager
def extra_buffers_off(llama_cpp_native: Any, off: bool = True) -> Iterator[None]:
    """While open (and ``off``), models loaded through ``llama_cpp_native`` get no extra buffer types."""
    if not off:
        yield
        return
    original = llama_cpp_native.llama_model_default_params
    llama_cpp_native.llama_model_default_params = without_extra_buffers(original)
    try:
        yield
    finally:
        llama_cpp_native.llama_model_default_params = original


def load_llama(path: str, n_ctx: int = LLAMACPP_N_CTX, n_threads: int | None = None,
               extra_buffers: str = "auto") -> Any:
    """Load (once per process) a GGUF model with llama-cpp-python; BackendError when missing or unloadable.

    ``extra_buffers`` (``auto``/``on``/``off``, see ``rag.cpu.llamacpp_extra_buffers``): ``auto`` turns llama.cpp's
    extra buffer types off on a CPU with AMX when the library was built with its AMX kernels. The loaded model's
    ``model_params.use_extra_bufts`` says what was used."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BackendError(f"llamacpp backend: no GGUF file at {p}: give the path of a .gguf model in {_WHERE}")
    try:
        import llama_cpp
    except ImportError:
        raise BackendError(
            f"llamacpp backend ({p}) needs llama-cpp-python, which is not installed: {INSTALL_LLAMACPP}"
        ) from None
    threads = n_threads or llamacpp_threads()
    key = (str(p.resolve()), n_ctx, threads, extra_buffers)
    with _LLAMAS_LOCK:
        if key in _LLAMAS:
            return _LLAMAS[key]
        from rag.cpu import llamacpp_extra_buffers

        use_extra = llamacpp_extra_buffers(extra_buffers)
        try:
            # llama.cpp prints cache notes on stderr even with verbose=False
            with _quiet_stderr(), extra_buffers_off(llama_cpp.llama_cpp, off=not use_extra):
                llama = llama_cpp.Llama(
                    model_path=str(p), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
                )
        except Exception as exc:  # llama.cpp raises ValueError for files it cannot load
            raise BackendError(
                f"llamacpp backend cannot load {p} ({_one_line(str(exc), 120)}): is it a GGUF model file? "
                f"fix {_WHERE}"
            ) from None
        meta = getattr(llama, "metadata", {}) or {}
        if "tokenizer.chat_template" not in meta and str(meta.get("general.architecture", "")).startswith("gemma"):
            # GGUFs without an embedded template fall back to llama-2's; Gemma needs its own turn markers
            llama.chat_format = "gemma"
        _LLAMAS[key] = llama
        _CALL_LOCKS[id(llama)] = threading.Lock()
        return llama


def _lc_role(message: Any) -> str:
    kind = getattr(message, "type", "human")
    return {"system": "system", "human": "user", "ai": "assistant", "tool": "tool"}.get(kind, "user")


def _make_llamacpp_model(llama: Any, path: str, max_tokens: int, timeout: float) -> BaseChatModel:
    from langchain_core.callbacks import CallbackManagerForLLMRun
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
    from pydantic import ConfigDict, Field

    class LlamaCppChatModel(BaseChatModel):
        """llama-cpp-python's ``Llama`` as a LangChain chat model (temperature 0, bounded output, a deadline)."""

        model_config = ConfigDict(arbitrary_types_allowed=True)
        model_path: str
        max_tokens: int = 384
        timeout: float = 120.0
        temperature: float = 0.0
        llama: Any = Field(default=None, exclude=True)

        @property
        def _llm_type(self) -> str:
            return "citeqa-llamacpp"

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {"model_path": self.model_path, "max_tokens": self.max_tokens, "temperature": self.temperature}

        def _deltas(self, messages: list[BaseMessage], stop: list[str] | None) -> Iterator[str]:
            msgs = [{"role": _lc_role(m), "content": m.text} for m in messages]
            deadline = time.monotonic() + self.timeout
            lock = _CALL_LOCKS.setdefault(id(self.llama), threading.Lock())
            with lock:  # one generation at a time per loaded model (llama.cpp contexts are not thread-safe)
                stream = self.llama.create_chat_completion(
                    msgs, max_tokens=self.max_tokens, temperature=self.temperature, stop=stop, stream=True
                )
                for part in stream:
                    delta = (part["choices"][0].get("delta") or {}).get("content") or ""
                    if delta:
                        yield delta
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"generation took longer than {self.timeout:g} s")

        def _generate(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> ChatResult:
            text = "".join(self._deltas(messages, stop))
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

        def _stream(
            self,
            messages: list[BaseMessage],
            stop: list[str] | None = None,
            run_manager: CallbackManagerForLLMRun | None = None,
            **kwargs: Any,
        ) -> Iterator[ChatGenerationChunk]:
            for delta in self._deltas(messages, stop):
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=delta))
                if run_manager:
                    run_manager.on_llm_new_token(delta, chunk=chunk)
                yield chunk

    return LlamaCppChatModel(model_path=path, max_tokens=max_tokens, timeout=timeout, llama=llama)


# -- one deadline per backend call ------------------------------------------------------------------------------
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


# -- building chat models ---------------------------------------------------------------------------------------
def make_chat_model(spec: str, settings: Settings, *, max_tokens: int | None = None) -> BaseChatModel:
    """The LangChain chat model for a generative ``spec``: temperature 0, ``settings.llm_timeout`` seconds per
    call (one deadline for the whole call, retries and streaming included), at most ``max_tokens`` (default
    ``settings.llm_max_tokens``) generated tokens. Servers are not contacted here; a llamacpp model is loaded
    here (BackendError if the file is missing or not a model)."""
    s = parse_llm_spec(spec)
    limit = int(max_tokens or settings.llm_max_tokens)
    timeout = float(settings.llm_timeout)
    if s.kind == "extractive":
        raise ConfigError("the extractive backend has no chat model: use make_answerer")
    if s.kind == "llamacpp":
        llama = load_llama(s.model, extra_buffers=settings.llamacpp_extra_buffers)
        return _make_llamacpp_model(llama, s.model, limit, timeout)
    if s.kind == "ollama":
        try:
            from langchain_ollama import ChatOllama
        except ImportError:
            raise BackendError("ollama backend needs langchain-ollama: pip install 'citeqa[ollama]'") from None
        return _bounded(ChatOllama)(
            model=s.model,
            base_url=s.url,
            temperature=0.0,
            num_predict=limit,
            client_kwargs={"timeout": timeout},
            sync_client_kwargs={"transport": deadline_transport()},
            validate_model_on_init=False,
            call_timeout=timeout,
        )
    try:
        from langchain_openai import ChatOpenAI
    except ImportError:
        raise BackendError("openai backend needs langchain-openai: pip install 'citeqa[openai]'") from None
    official = s.url is not None and "api.openai.com" in s.url
    key = os.environ.get("OPENAI_API_KEY") or "not-needed"  # local servers accept any key
    kwargs: dict[str, Any] = {}
    if official:
        kwargs["max_tokens"] = limit  # sent as max_completion_tokens, which OpenAI's own API wants
    else:
        # llama.cpp's server ignores max_completion_tokens (an unbounded answer took 82 s against 1.1 s);
        # every OpenAI-compatible server reads max_tokens
        kwargs["extra_body"] = {"max_tokens": limit}
    import httpx

    return _bounded(ChatOpenAI)(
        model=s.model,
        base_url=s.url,
        api_key=key,
        timeout=timeout,
        max_retries=1,  # within the call's one deadline: a retry only runs while time is left
        temperature=0.0,
        http_client=httpx.Client(transport=deadline_transport(), timeout=timeout),
        call_timeout=timeout,
        **kwargs,
    )


def make_answerer(settings: Settings, embedder: Embedder) -> Answerer:
    """The answerer for ``settings.llm``: ExtractiveAnswerer, or a GenerativeAnswerer over the chat model."""
    s = parse_llm_spec(settings.llm)
    if s.kind == "extractive":
        from rag.extractive import ExtractiveAnswerer

        return ExtractiveAnswerer(embedder, min_relevance=settings.min_relevance)
    from rag.generative import DEFAULT_STOP, GenerativeAnswerer

    model = make_chat_model(settings.llm, settings)
    rewriter = make_chat_model(settings.llm, settings, max_tokens=min(REWRITE_MAX_TOKENS, settings.llm_max_tokens))
    official = s.kind == "openai" and s.url is not None and "api.openai.com" in s.url
    return GenerativeAnswerer(
        model,
        embedder,
        name=settings.llm,
        min_relevance=settings.min_relevance,
        rewrite_model=rewriter,
        spec=s,
        stop=None if official else DEFAULT_STOP,  # OpenAI's reasoning models reject `stop`
    )
