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
    from langchain_core.language_models import BaseChatModel

    from rag.interfaces import Answerer, Embedder
    from rag.settings import Settings

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
    ``settings.llm_max_tokens``) generated tokens. Servers are not contacted here; a llamacpp model is loaded
    here (BackendError if the file is missing or not a model)."""
    s = _parse(spec, settings)
    limit = int(max_tokens or settings.llm_max_tokens)
    timeout = float(settings.llm_timeout)
    if s.kind == "extractive":
        raise ConfigError("the extractive backend has no chat model: use make_answerer")
    if s.kind == "llamacpp":
        llama = load_llama(s.model, n_threads=settings.llamacpp_threads, extra_buffers=settings.llamacpp_extra_buffers)
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


def make_answerer(settings: Settings, embedder: Embedder) -> Answerer:
    """The answerer for ``settings.llm``: ExtractiveAnswerer, or a GenerativeAnswerer over the chat model."""
    s = _parse(settings.llm, settings)
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
