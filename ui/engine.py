"""The process-wide part of the UI: one `Citeqa` per collection, built once from the settings `serve` was given,
plus per-session variants (hybrid on/off, another backend) that share the collection's parts, so an ingest
through one is seen by all of them at once."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag.errors import BusyError, ConfigError, NotFoundError
from rag.settings import Settings, load_settings

ANSWERS_PER_SESSION = 1  # answers one session (a browser tab, an API client) may have running at once
EVAL_COLLECTION = re.compile(r"^eval-[0-9a-f]{12}$")  # `citeqa eval`'s own collections (evals.runner)


def validated(base: Settings, **changes: Any) -> Settings:
    """``base`` with ``changes``, validated like the CLI validates flags (raises ConfigError)."""
    return load_settings(**{**base.model_dump(), **changes})


UI_NAMES = {"collection": "Collection name", "llm": "Answer backend", "k": "k (passages to retrieve)",
            "hybrid": "Hybrid retrieval"}


def ui_message(err: ConfigError) -> str:
    """A ConfigError's line in the UI's words: the field as the UI names it, no CLI flags."""
    if err.setting is None or err.why is None:
        return str(err)
    return f"{UI_NAMES.get(err.setting, err.setting)} {err.value!r} is not valid: {err.why}"


class ReadWriteLock:
    """Many readers (retrieval) or one writer (ingest, forget) per collection, so an ingest never changes the
    BM25 index under a retrieval. A waiting writer goes before readers that come after it: with questions
    arriving all the time there is always a reader, and an upload would otherwise wait for ever. Built on a
    plain Lock, so a streamed answer may release it from another worker thread than the one that took it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writer and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                self._cond.wait_for(lambda: not self._writer and self._readers == 0)
            except BaseException:
                self._writers_waiting -= 1
                self._cond.notify_all()  # the readers held back for this writer may go
                raise
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class Engine:
    """Owns the Citeqa objects. ``factory`` is how one is built (``ingest.compose.Citeqa`` by default)."""

    def __init__(self, settings: Settings, factory: Callable[..., Any] | None = None) -> None:
        self.settings = settings
        self._factory = factory
        self._lock = threading.RLock()
        self._base: dict[str, Any] = {}
        self._variants: dict[tuple[str, bool, str], Any] = {}
        self._embedder: Any = None
        self._locks: dict[str, ReadWriteLock] = {}
        self.backends = settings.offered_backends  # name -> spec: what sessions may pick (rag.settings)
        self._running: dict[str, int] = {}  # session -> answers running
        self._page_views: Any = None

    @property
    def page_views(self) -> Any:  # -> ingest.page_view.PageViews: cited PDF pages, rendered when asked, cached
        with self._lock:
            if self._page_views is None:
                from ingest.page_view import PageViews

                self._page_views = PageViews()
            return self._page_views

    def _make(self, settings: Settings, **kw: Any) -> Any:
        if self._factory is None:
            from ingest.compose import Citeqa

            self._factory = Citeqa
        return self._factory(settings, **kw)

    def settings_for(self, collection: str) -> Settings:
        if collection == self.settings.collection:
            return self.settings
        return validated(self.settings, collection=collection)

    def exists(self, collection: str) -> bool:
        """The server's own collection, one that is open, or one with side files (created in the Library tab or
        by `citeqa ingest`), or on a Chroma server one citeqa built there."""
        if collection == self.settings.collection or collection in self._base:
            return True
        if self.settings_for(collection).collection_dir.is_dir():
            return True
        return bool(self.settings.chroma) and collection in self.collections()  # made by another replica

    def qa(self, collection: str | None = None) -> Any:
        """The Citeqa of a collection with the server's settings (the one that ingests and forgets). A collection
        that does not exist raises NotFoundError: asking or listing one never creates it."""
        name = collection or self.settings.collection
        with self._lock:
            qa = self._base.get(name)
            if qa is None:
                if not self.exists(name):
                    raise NotFoundError(
                        f"collection '{name}' does not exist: create it in the Library tab (or with "
                        f"`citeqa ingest --collection {name}`) first"
                    )
                kw = {"embedder": self._embedder} if self._embedder is not None else {}
                qa = self._make(self.settings_for(name), **kw)
                self._base[name] = qa
            return qa

    def lock(self, collection: str) -> ReadWriteLock:
        with self._lock:
            return self._locks.setdefault(collection, ReadWriteLock())

    def embedder(self) -> Any:
        with self._lock:
            if self._embedder is None:
                self._embedder = self.qa().embedder
            return self._embedder

    def backend_spec(self, name: str) -> str:
        """The spec of an offered backend; anything else (a spec, a URL, a path) raises ConfigError."""
        spec = self.backends.get(name) if isinstance(name, str) else None
        if spec is None:
            shown = str(name)[:60] + ("…" if len(str(name)) > 60 else "")
            raise ConfigError(
                f"answer backend '{shown}' is not offered by this server: pick one of {', '.join(self.backends)}"
            )
        return spec

    @contextmanager
    def answer_slot(self, session: str | None) -> Iterator[None]:
        """Held while a session's answer runs; BusyError when the session already has ANSWERS_PER_SESSION."""
        key = session or "-"
        with self._lock:
            if self._running.get(key, 0) >= ANSWERS_PER_SESSION:
                raise BusyError(
                    "you already have an answer running: wait for it to finish (each call of a generative "
                    f"backend gives up after {self.settings.llm_timeout:g} s), then ask again"
                )
            self._running[key] = self._running.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._running[key] -= 1
                if not self._running[key]:
                    del self._running[key]

    def answering_qa(self, collection: str, *, hybrid: bool, backend: str) -> Any:
        """The Citeqa that answers for a session: the collection's own one, or a variant sharing its parts.
        ``backend`` is the name of an offered backend (see backend_spec)."""
        llm = self.backend_spec(backend)
        base = self.qa(collection)
        if hybrid == base.settings.hybrid and llm == base.settings.llm:
            return base
        key = (collection, hybrid, llm)
        with self._lock:
            qa = self._variants.get(key)
            if qa is None:
                s = validated(base.settings, hybrid=hybrid, llm=llm)
                # the variant answers over the base's Collection: one store, BM25 index and text store per
                # collection, so an ingest through one is seen by all of them at once
                qa = self._make(s, embedder=base.embedder, collection=base.collection)
                self._variants[key] = qa
            return qa

    def collections(self) -> list[str]:
        """Collections that have side files in the data directory, plus the server's own, plus on a Chroma server
        the ones citeqa built there (by any replica); not the ones `citeqa eval` builds for its runs."""
        root = self.settings.data_dir / "collections"
        names = {self.settings.collection, *self._base}
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if p.is_dir())
        if self.settings.chroma:
            from rag.store import citeqa_collections

            names.update(citeqa_collections(self.qa().collection.client))
        return sorted(n for n in names if n == self.settings.collection or not EVAL_COLLECTION.match(n))

    def uploads_dir(self, collection: str) -> Path:
        return self.settings.data_dir / "uploads" / collection

    def feedback_path(self, collection: str) -> Path:
        return self.settings.feedback_folder / f"{collection}.jsonl"


def display_name(source: str, uploads: Path | None = None) -> str:
    """How a source file is named to the user: uploads by their file name, files under the working directory
    by their relative path, anything else by its full path."""
    p = Path(source)
    if uploads is not None:
        try:
            return str(p.relative_to(uploads))
        except ValueError:
            pass
    try:
        rel = os.path.relpath(source)
    except ValueError:
        return source
    return source if rel.startswith("..") else rel
