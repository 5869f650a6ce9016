"""llama.cpp in process: a GGUF model loaded once per process (AMX-safe: see ``rag.cpu``), and
llama-cpp-python's ``Llama`` as a LangChain chat model (temperature 0, bounded output, a deadline)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag.errors import BackendError
from rag.llm_spec import _WHERE

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

LLAMACPP_N_CTX = 8192  # prompt (k passages) + answer; Gemma 3 270M reads up to 32k
INSTALL_LLAMACPP = "pip install 'citeqa[llamacpp]'"


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


_LLAMAS: dict[tuple[str, int, int, str], Any] = {}
_LLAMAS_LOCK = threading.Lock()
_CALL_LOCKS: dict[int, threading.Lock] = {}


def llamacpp_threads(setting: int | None = None) -> int:
    """Threads for in-process llama.cpp: ``setting`` (the ``llamacpp_threads`` setting) when given, else half the
    cores (llama.cpp's spinning threads hurt on busy machines)."""
    if setting is not None and setting > 0:
        return setting
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
    ``model_params.use_extra_bufts`` says what was used. ``n_threads``: see ``llamacpp_threads``."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise BackendError(f"llamacpp backend: no GGUF file at {p}: give the path of a .gguf model in {_WHERE}")
    try:
        import llama_cpp
    except ImportError:
        raise BackendError(
            f"llamacpp backend ({p}) needs llama-cpp-python, which is not installed: {INSTALL_LLAMACPP}"
        ) from None
    threads = llamacpp_threads(n_threads)
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


def call_lock(llama: Any) -> threading.Lock:
    """The lock every call on a loaded model holds: one generation or judgement at a time per model (llama.cpp
    contexts are not thread-safe)."""
    with _LLAMAS_LOCK:
        return _CALL_LOCKS.setdefault(id(llama), threading.Lock())


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
            with call_lock(self.llama):  # one generation at a time per loaded model
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
