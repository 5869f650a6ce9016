"""A tiny error hierarchy. Every message names the thing and says what to do; the CLI prints one line
and exits non-zero, the UI shows it in the chat."""

from __future__ import annotations

from typing import Any


class CiteqaError(Exception):
    """Base class: ``str(err)`` is the one line shown to the user."""

    exit_code = 1


class ConfigError(CiteqaError):
    """A bad setting value (names the setting). ``setting``, ``value`` and ``why`` are the setting's name, the value
    it was given and what is wrong with it, for callers that word the error their own way (the UI); they are None
    when the error is not about one setting's value."""

    exit_code = 2

    def __init__(self, message: str, *, setting: str | None = None, value: Any = None, why: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting
        self.value = value
        self.why = why

    @classmethod
    def bad_value(cls, setting: str, where: str, value: Any, why: str) -> ConfigError:
        """The usual line, ``bad setting NAME (WHERE) = VALUE: WHY``; ``where`` names the flag and/or variable."""
        return cls(f"bad setting {setting} ({where}) = {value!r}: {why}", setting=setting, value=value, why=why)


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


class QuestionError(CiteqaError):
    """A question that cannot be asked as it is (empty, too long, no words, not text)."""

    exit_code = 2
