"""A tiny error hierarchy. Every message names the thing and says what to do; the CLI prints one line
and exits non-zero, the UI shows it in the chat."""

from __future__ import annotations


class CiteqaError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user."""

    exit_code = 1


class ConfigError(CiteqaError):
    """A bad setting value (names the setting)."""

    exit_code = 2


class FileError(CiteqaError):
    """A file that cannot be ingested (corrupt, empty, unknown type, too big...). Ingest reports and skips it."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class StoreError(CiteqaError):
    """The vector store cannot be reached or used."""


class BackendError(CiteqaError):
    """An answer backend cannot be reached or used (names backend and URL)."""


class NotFoundError(CiteqaError):
    """A collection, source or file that does not exist."""


class BusyError(CiteqaError):
    """Another process holds the collection (e.g. a concurrent ingest)."""
