"""Bearer API keys for the HTTP APIs of ``citeqa serve`` (``/v1`` and ``/api``).

Keys come from ``CITEQA_API_KEYS`` (entries separated by ``;`` or new lines) and/or a keys file
(``CITEQA_API_KEYS_FILE``: one entry a line, ``#`` starts a comment). An entry is ``KEY`` (every collection) or
``KEY=coll,coll`` (only those collections). A key is 16-200 letters, digits, ``-``, ``_`` or ``.``.

Without keys the HTTP APIs answer only when nobody else can reach them: a loopback bind without ``--auth``
(``--auth`` protects the UI; an open API beside it would go round the login).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from rag.errors import ConfigError

_KEY_RE = re.compile(r"[A-Za-z0-9._-]{16,200}")
_COLLECTION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,126}[A-Za-z0-9]")


@dataclass(frozen=True)
class ApiKey:
    """One key; ``collections`` None means every collection."""

    secret: str
    collections: frozenset[str] | None = None

    def allows(self, collection: str) -> bool:
        return self.collections is None or collection in self.collections


OPEN = ApiKey(secret="", collections=None)  # the caller when no key is needed (loopback, no keys, no --auth)


def parse_entries(lines: Iterable[str], where: str) -> list[ApiKey]:
    """Keys from entries ``KEY`` or ``KEY=coll,coll``; raises ConfigError naming ``where`` (never the key)."""
    out: list[ApiKey] = []
    for i, raw in enumerate(lines, 1):
        entry = raw.split("#", 1)[0].strip()
        if not entry:
            continue
        secret, sep, names = entry.partition("=")
        secret = secret.strip()
        if not _KEY_RE.fullmatch(secret):
            raise ConfigError(f"bad setting api_keys ({where}): entry {i} is not a key of 16-200 letters, digits, "
                              "'-', '_' or '.' (optionally =collection,collection)", setting="api_keys")
        collections = None
        if sep:
            parts = [n.strip() for n in names.split(",") if n.strip()]
            bad = [n for n in parts if not _COLLECTION_RE.fullmatch(n)]
            if not parts or bad:
                raise ConfigError(f"bad setting api_keys ({where}): entry {i} must list collection names after '=' "
                                  "(KEY=coll,coll)", setting="api_keys")
            collections = frozenset(parts)
        out.append(ApiKey(secret, collections))
    return out


def load_keys(api_keys: str | None, api_keys_file: Path | None) -> list[ApiKey]:
    """The keys of the settings ``api_keys`` (CITEQA_API_KEYS) and ``api_keys_file`` (CITEQA_API_KEYS_FILE)."""
    keys = parse_entries(re.split(r"[;\n]", api_keys or ""), "CITEQA_API_KEYS")
    if api_keys_file is not None:
        try:
            text = Path(api_keys_file).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"bad setting api_keys_file (CITEQA_API_KEYS_FILE) = '{api_keys_file}': cannot read "
                              f"it ({exc.strerror or exc})", setting="api_keys_file") from None
        keys += parse_entries(text.splitlines(), "CITEQA_API_KEYS_FILE")
    return keys


class KeyRing:
    """Who may call the HTTP APIs. ``open_access``: no key is needed (see the module's docstring)."""

    def __init__(self, keys: list[ApiKey], *, open_access: bool) -> None:
        self.keys = keys
        self.open_access = open_access and not keys

    @property
    def required(self) -> bool:
        return not self.open_access

    def find(self, authorization: str | None) -> ApiKey | None:
        """The key an ``Authorization: Bearer KEY`` header names (OPEN when none is needed), else None."""
        if self.open_access:
            return OPEN
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        found = None
        for key in self.keys:  # compare with every key in constant time: no early exit tells which one is close
            if hmac.compare_digest(key.secret.encode(), token.encode()):
                found = key
        return found
