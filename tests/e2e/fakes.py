"""A scripted stand-in for ingest.compose.Citeqa, for browser tests of what the UI does with answers the real
extractive backend rarely produces: many streamed pieces, unsupported sentences, backend errors, crashes,
HTML in documents. Deterministic: the question picks the script."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ingest.collection import SourceInfo
from rag.asker import check_question
from rag.errors import BackendError, NotFoundError
from rag.types import Answer, Citation, Turn

DOC = (
    "Harbour notes. The lighthouse at Point Ardent was built in 1874 by the harbour board. "
    "Its lamp burned colza oil until 1921. Visitors may climb the 112 steps on Sundays. "
    "A <b>bold</b> claim & an <script>window.__xss = 1</script> tag live in this file too."
)
SOURCE = "/srv/docs/harbour notes.txt"
STREAM_PIECES = ["The lighthouse ", "was built ", "in 1874 ", "[1]. ", "It is ", "made of ", "gold ", "[2]."]


class ScriptedCiteqa:
    def __init__(self, settings: Any, embedder: Any = None, collection: Any = None) -> None:
        self.settings = settings
        self.embedder = embedder or object()
        self.collection = collection or self  # the UI's variants share their base's collection
        self.calls: list[tuple[str, tuple[Turn, ...]]] = []

    def sources(self) -> list[SourceInfo]:
        return [SourceInfo(SOURCE, 3, "0" * 64, len(DOC), 1_700_000_000.0, 0)]

    def document_text(self, source: str, max_bytes: int | None = None) -> str:
        if source != SOURCE:
            raise NotFoundError(f"{source} is not in collection '{self.settings.collection}'")
        return DOC

    def ingest(self, paths: Sequence[Path], **kw: Any) -> Any:
        raise NotImplementedError("the scripted Citeqa does not ingest")

    def forget(self, path: str) -> int:
        raise NotFoundError(f"{path} is not in collection")

    def _cite(self, n: int, needle: str, supported: bool) -> Citation:
        start = DOC.index(needle)
        return Citation(n, SOURCE, 1, start, start + len(needle), needle, 0.9, supported=supported)

    def stream(self, question: str, k: int | None = None, history: Sequence[Turn] = (),
               source: str | None = None) -> Iterator[str | Answer]:
        q = check_question(question)
        self.calls.append((q, tuple(history)))
        if "backend" in q:
            raise BackendError("ollama at http://127.0.0.1:11434 is not reachable: start it with `ollama serve`")
        if "crash" in q:
            raise RuntimeError("boom")
        if "markup" in q:
            text = "The file says <script>window.__xss = 2</script> & <b>more</b> [1]."
            yield text
            yield Answer(q, text, None, False, (self._cite(1, "A <b>bold</b> claim", True),))
            return
        for piece in STREAM_PIECES:
            time.sleep(0.25)
            yield piece
        text = "".join(STREAM_PIECES)
        cits = (
            self._cite(1, "The lighthouse at Point Ardent was built in 1874 by the harbour board.", True),
            self._cite(2, "Its lamp burned colza oil until 1921.", False),
        )
        yield Answer(q, text, "1874", False, cits, unsupported_sentences=("It is made of gold [2].",),
                     notes=("scripted answer",))

    def ask(self, question: str, k: int | None = None, history: Sequence[Turn] = (),
            source: str | None = None) -> Answer:
        final = None
        for part in self.stream(question, k, history, source):
            final = part
        assert isinstance(final, Answer)
        return final

    def retrieve(self, *a: Any, **kw: Any) -> list:
        return []


def scripted_factory(record: list[ScriptedCiteqa]):
    def make(settings: Any, embedder: Any = None) -> ScriptedCiteqa:
        qa = ScriptedCiteqa(settings, embedder)
        record.append(qa)
        return qa

    return make
