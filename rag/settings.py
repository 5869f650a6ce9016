"""One settings object, built once at the edge (CLI flags > CITEQA_* environment > defaults) and passed down."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rag.errors import ConfigError

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,126}[A-Za-z0-9]$")
_HOSTPORT_RE = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")
EMBEDDERS = ("minilm", "minilm-int8")


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("citeqa", appauthor=False))


class Settings(BaseSettings):
    """All of citeqa's knobs. Environment names are ``CITEQA_<FIELD>`` (e.g. ``CITEQA_DATA_DIR``)."""

    model_config = SettingsConfigDict(env_prefix="CITEQA_", extra="ignore", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="where collections live")
    collection: str = Field("default", description="Chroma collection name")
    chroma: str | None = Field(None, description="host:port of a `chroma run` server; unset = embedded")
    llm: str = Field("extractive", description="answer backend spec")
    embedder: str = Field(
        "minilm-int8", description="minilm-int8 (int8 ONNX, onnxruntime; the default) or minilm (sentence-transformers)"
    )
    chunk_size: int = Field(128, description="max word pieces per chunk (the model reads at most 256)")
    chunk_overlap: int = Field(24, description="word pieces of overlap between neighbouring chunks")
    k: int = Field(5, description="passages retrieved per question")
    hybrid: bool = Field(True, description="fuse BM25 with dense retrieval, plus a second round from the best passages")
    expand: bool = Field(True, description="with hybrid: a second BM25 round from the best passages (multi-hop)")
    mmr: bool = Field(False, description="diversify the passages with maximal marginal relevance")
    max_file_mb: float = Field(200.0, description="files larger than this are skipped")
    min_relevance: float = Field(
        0.3, description="abstain when neither the best passage nor the best sentence is this similar"
    )
    llm_timeout: float = Field(120.0, description="seconds before an LLM call is abandoned")
    llm_max_tokens: int = Field(384, description="max tokens an LLM may generate per answer")
    llamacpp_extra_buffers: str = Field(
        "auto",
        description="llama.cpp's extra buffer types (weight repacking): auto = off on AMX CPUs when llama.cpp was "
        "built with its AMX kernels (they crash on the first decode), on, off",
    )

    @field_validator("collection")
    @classmethod
    def _collection(cls, v: str) -> str:
        if not _COLLECTION_RE.match(v) or ".." in v:
            raise ValueError(
                "must be 3-128 characters of letters, digits, '.', '_' or '-', starting and ending with a "
                "letter or digit"
            )
        return v

    @field_validator("chroma", mode="before")
    @classmethod
    def _chroma(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and v.strip() == ""):
            return None
        m = _HOSTPORT_RE.match(str(v).strip())
        if not m or not (0 < int(m.group("port")) < 65536):
            raise ValueError("must be host:port of a running `chroma run` server, e.g. 127.0.0.1:8000")
        return str(v).strip()

    @field_validator("embedder")
    @classmethod
    def _embedder(cls, v: str) -> str:
        if v not in EMBEDDERS:
            raise ValueError(f"must be one of {', '.join(EMBEDDERS)}")
        return v

    @field_validator("llm")
    @classmethod
    def _llm(cls, v: str) -> str:
        kind = v.split(":", 1)[0]
        if kind not in ("extractive", "llamacpp", "ollama", "openai"):
            raise ValueError(
                "must be extractive, llamacpp:PATH.gguf, ollama:MODEL[@host:port] or openai:MODEL@BASE_URL"
            )
        if kind != "extractive" and (":" not in v or not v.split(":", 1)[1]):
            raise ValueError(f"'{kind}:' needs a model after the colon, e.g. {kind}:NAME")
        return v

    @field_validator("llamacpp_extra_buffers")
    @classmethod
    def _extra_buffers(cls, v: str) -> str:
        if v not in ("auto", "on", "off"):
            raise ValueError("must be auto, on or off")
        return v

    @field_validator("chunk_size")
    @classmethod
    def _chunk_size(cls, v: int) -> int:
        if not 16 <= v <= 256:
            raise ValueError("must be between 16 and 256 word pieces (the embedder reads at most 256)")
        return v

    @field_validator("k")
    @classmethod
    def _k(cls, v: int) -> int:
        if not 1 <= v <= 100:
            raise ValueError("must be between 1 and 100")
        return v

    @field_validator("max_file_mb", "llm_timeout")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than 0")
        return v

    @field_validator("min_relevance")
    @classmethod
    def _unit(cls, v: float) -> float:
        if not -1.0 <= v <= 1.0:
            raise ValueError("must be a cosine similarity between -1 and 1")
        return v

    @model_validator(mode="after")
    def _overlap(self) -> Settings:
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise ValueError("chunk_overlap must be >= 0 and smaller than chunk_size")
        return self

    @property
    def chroma_host_port(self) -> tuple[str, int] | None:
        if not self.chroma:
            return None
        host, _, port = self.chroma.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def collection_dir(self) -> Path:
        """Per-collection side files: manifest, BM25 index, extracted texts, locks."""
        return self.data_dir / "collections" / self.collection

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from flags (``overrides``, None values ignored) over the environment over defaults.

    A bad value raises :class:`ConfigError` with one line naming the setting and its environment variable.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err.get("loc") else "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = err.get("input")
        where = f"--{name.replace('_', '-')} / CITEQA_{name.upper()}" if name != "settings" else "settings"
        raise ConfigError(f"bad setting {name} ({where}) = {value!r}: {msg}") from None
