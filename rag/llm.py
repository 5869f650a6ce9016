"""Answer backends: the ``llm`` setting parsed into a spec, the LangChain chat model for it (with a timeout and a
bound on the tokens it may generate), backend failures turned into one-line ``BackendError``s, and
``make_answerer`` which picks the extractive or the generative answerer.

The specs are described in ``rag.llm_spec``.

Heavy imports (langchain integrations, llama_cpp) happen inside the functions that need them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rag.backend_errors import backend_error
from rag.deadline import _bounded, call_deadline, deadline_transport
from rag.errors import BackendError, ConfigError
from rag.llamacpp import (
    INSTALL_LLAMACPP,
    LLAMACPP_N_CTX,
    _make_llamacpp_model,
    extra_buffers_off,
    llamacpp_threads,
    load_llama,
    without_extra_buffers,
)
from rag.llm_spec import KINDS, OLLAMA_DEFAULT, OPENAI_DEFAULT, LlmSpec, parse_llm_spec

if TYPE_CHECKING:
    from collections.abc import Callable

    from langchain_core.language_models import BaseChatModel

    from rag.interfaces import Answerer, Embedder
    from rag.settings import Settings
    from rag.types import Hit

REWRITE_MAX_TOKENS = 64  # a standalone question is short; bounds the rewrite call

__all__ = [
    "INSTALL_LLAMACPP",
    "KINDS",
    "LLAMACPP_N_CTX",
    "OLLAMA_DEFAULT",
    "OPENAI_DEFAULT",
    "REWRITE_MAX_TOKENS",
    "LlmSpec",
    "backend_error",
    "call_deadline",
    "deadline_transport",
    "extra_buffers_off",
    "llamacpp_threads",
    "load_llama",
    "make_answerer",
    "make_chat_model",
    "make_verifier",
    "parse_llm_spec",
    "without_extra_buffers",
]


def _parse(spec: str, settings: Settings) -> LlmSpec:
    """``spec`` parsed with the servers ``settings`` gives specs that name none."""
    return parse_llm_spec(spec, ollama_host=settings.ollama_host, openai_base_url=settings.openai_base_url)


# -- building chat models ---------------------------------------------------------------------------------------
def make_chat_model(spec: str, settings: Settings, *, max_tokens: int | None = None) -> BaseChatModel:
    """The LangChain chat model for a generative ``spec``: temperature 0, ``settings.llm_timeout`` seconds per
    call (one deadline for the whole call, retries and streaming included), at most ``max_tokens`` (default
    ``settings.llm_max_tokens``) generated tokens. Servers are not contacted here; a llamacpp or local model is
    loaded here (BackendError if the file is missing or not a model; the local one is assembled the first time)."""
    s = _parse(spec, settings)
    limit = int(max_tokens or settings.llm_max_tokens)
    timeout = float(settings.llm_timeout)
    if s.kind == "extractive":
        raise ConfigError("the extractive backend has no chat model: use make_answerer")
    if s.kind == "llamacpp":
        llama = load_llama(s.model, n_threads=settings.llamacpp_threads, extra_buffers=settings.llamacpp_extra_buffers)
        return _make_llamacpp_model(llama, s.model, limit, timeout)
    if s.kind == "local":
        return _local_chat_model(settings, limit, timeout)
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
    secret = settings.openai_api_key
    key = (secret.get_secret_value() if secret is not None else "") or "not-needed"  # local servers accept any key
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


def local_threads() -> int:
    """Threads for the ``local`` model when the ``llamacpp_threads`` setting is unset: every core, at most 8. An
    answer is the only work the machine does while it is generated, and on 2 cores one thread halves the speed
    (prompt ~25 against ~55 tokens/s measured here); past 8 threads llama.cpp gains little."""
    import os

    return max(1, min(8, os.cpu_count() or 2))


def load_local_llama(settings: Settings, n_ctx: int | None = None) -> Any:
    """The ``local`` model loaded in process, once per process and context size: the bundled GGUF, assembled and
    verified once (``rag.local_model``), through the AMX-safe ``load_llama``. ``n_ctx`` (default
    ``LOCAL_N_CTX``): the verifier asks for a small context of its own, so that its prompts and the answer
    prompts each keep their fixed head in llama.cpp's cache (one context holds one prompt; alternating would
    evaluate the worked examples again on every question). The weights are memory-mapped: the second context
    costs its cache (~30 MB), not another copy of the model."""
    import importlib.util

    from rag.local_model import INSTALL_LOCAL, LOCAL_N_CTX, MODEL_LABEL, ensure_local_model

    if importlib.util.find_spec("llama_cpp") is None:
        raise BackendError(f"local backend ({MODEL_LABEL}) needs llama-cpp-python, which is not installed: "
                           f"{INSTALL_LOCAL}")
    path = str(ensure_local_model(settings.cache_dir))
    threads = settings.llamacpp_threads or local_threads()
    return load_llama(path, n_ctx=n_ctx or LOCAL_N_CTX, n_threads=threads,
                      extra_buffers=settings.llamacpp_extra_buffers)


def _local_chat_model(settings: Settings, max_tokens: int, timeout: float) -> BaseChatModel:
    """The ``local`` model as a chat model; llama.cpp applies the chat template stored in the GGUF (ChatML)."""
    llama = load_local_llama(settings)
    return _make_llamacpp_model(llama, llama.model_path, max_tokens, timeout)


def make_verifier(settings: Settings) -> Any:
    """The ``rag.verify.LlamaVerifier`` the ``verify`` setting names (None for ``off``); the local model is loaded
    once per process (shared with ``--llm local``) and assembled the first time."""
    if settings.verify == "off":
        return None
    from rag.verify import VERIFY_N_CTX, LlamaVerifier

    return LlamaVerifier(load_local_llama(settings, n_ctx=VERIFY_N_CTX))


def make_answerer(settings: Settings, embedder: Embedder, *, analyzer: Any = None,
                  retrieve: Callable[[str, int], list[Hit]] | None = None) -> Answerer:
    """The answerer for ``settings.llm``: ExtractiveAnswerer, or a GenerativeAnswerer over the chat model that
    decides relevance with the same ExtractiveAnswerer (one spaCy pipeline; pass ``analyzer`` to share one across
    answerers). With ``settings.verify`` the answers are judged first (``rag.verify``); with ``claims`` a generated
    answer's cited sentences are judged too. ``retrieve(query, k)``
    gives a generative answerer its second hop (a search for what its model names as missing)."""
    from rag.extractive import ExtractiveAnswerer
    from rag.verify import VerifiedAnswerer

    s = _parse(settings.llm, settings)
    extractive = ExtractiveAnswerer(embedder, min_relevance=settings.min_relevance, analyzer=analyzer)
    verifier = make_verifier(settings)
    if s.kind == "extractive":
        if verifier is None:
            return extractive
        return VerifiedAnswerer(extractive, verifier, settings.verify_threshold)
    from rag.generative import DEFAULT_STOP, GenerativeAnswerer

    model = make_chat_model(settings.llm, settings)
    rewrite_tokens = min(REWRITE_MAX_TOKENS, settings.llm_max_tokens)
    if s.kind == "local":
        # follow-up rewrites and second-hop queries in a llama.cpp context of their own: in the answer's one they
        # would evict its cached head (the worked examples: ~10 s to evaluate again on 2 cores)
        from rag.local_model import SIDE_N_CTX

        side = load_local_llama(settings, n_ctx=SIDE_N_CTX)
        rewriter = _make_llamacpp_model(side, side.model_path, rewrite_tokens, float(settings.llm_timeout))
    else:
        rewriter = make_chat_model(settings.llm, settings, max_tokens=rewrite_tokens)
    official = s.kind == "openai" and s.url is not None and "api.openai.com" in s.url
    view: dict[str, Any] = {}
    if s.kind == "local":
        from rag.local_model import CHAINED_VIEW, PASSAGE_SENTENCES, PROMPT_PASSAGES

        view = {"prompt_passages": PROMPT_PASSAGES, "passage_sentences": PASSAGE_SENTENCES,
                "chained_view": CHAINED_VIEW}
    return GenerativeAnswerer(
        model,
        embedder,
        name=settings.llm,
        min_relevance=settings.min_relevance,
        rewrite_model=rewriter,
        spec=s,
        extractive=extractive,
        verifier=verifier,
        verify_threshold=settings.verify_threshold,
        claim_judge=verifier if settings.verify == "claims" else None,
        stop=None if official else DEFAULT_STOP,  # OpenAI's reasoning models reject `stop`
        retrieve=retrieve,
        **view,
    )
