"""A text file too big to hold at once, read as a `TextFile`: `scan_text_file` takes its hash and decides its
encoding in one pass, `iter_text` then yields its text in windows, the same text `load_document` would give."""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.loaders.common import _MIME
from ingest.loaders.files import _hash_blocks, _open_error
from ingest.loaders.text import (
    _BINARY,
    _CP1252_UNDEFINED,
    _SNIFF,
    _UNDECODABLE,
    _bom_encoding,
    _invalid,
    _looks_binary,
    _mostly_non_ascii,
)
from rag.errors import FileError

STREAM_WINDOW = 2 * 2**20  # bytes of a big .txt/.md file decoded and chunked at a time


@dataclass(frozen=True)
class TextFile:
    """A .txt/.md file to read in windows: its hash and the encoding that decodes the whole of it."""

    path: Path
    source: str  # absolute, resolved
    content_hash: str
    size: int
    encoding: str
    mime: str


class _EncodingScan:
    """Decides, block by block, the encoding `decode_text` would choose for the whole file (or its error)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.bom: str | None = None
        self.sample = b""
        self.started = False
        self.utf8_ok = True
        self.cp1252_ok = True
        self.nul = False
        self._dec: codecs.IncrementalDecoder | None = None

    def feed(self, block: bytes, final: bool = False) -> None:
        if not self.started:
            self.started = True
            self.bom = _bom_encoding(block)
            self.sample = block[:_SNIFF]
            if self.bom is None and _looks_binary(self.sample):
                raise FileError(self.name, _BINARY)
            self._dec = codecs.getincrementaldecoder(self.bom or "utf-8")("strict")
        if self.bom is not None:
            try:
                self.nul = "\x00" in self._dec.decode(block, final) or self.nul  # type: ignore[union-attr]
            except UnicodeDecodeError as exc:
                raise FileError(self.name, _invalid(self.bom, exc)) from None
            return
        self.nul = self.nul or b"\x00" in block
        if self.utf8_ok:
            try:
                self._dec.decode(block, final)  # type: ignore[union-attr]
            except UnicodeDecodeError:
                self.utf8_ok = False
        if self.cp1252_ok and block.translate(None, _CP1252_UNDEFINED) != block:
            self.cp1252_ok = False

    def encoding(self) -> str:
        """The encoding, or the FileError, in the order `decode_text` finds them."""
        if self.bom is None and not self.utf8_ok and _mostly_non_ascii(self.sample):
            raise FileError(self.name, _UNDECODABLE)
        if self.nul:
            raise FileError(self.name, _BINARY)
        if self.bom is not None:
            return self.bom
        if self.utf8_ok:
            return "utf-8"
        return "cp1252" if self.cp1252_ok else "latin-1"


def scan_text_file(path: Path, max_bytes: int) -> TextFile:
    """One pass over a text file (after `check_file`): its sha256 and the encoding `load_document` would use,
    or the FileError it would raise (binary, undecodable). Memory stays at one block whatever the size."""
    path = Path(path)
    name = str(path)
    scan = _EncodingScan(name)
    digest, size = _hash_blocks(path, max_bytes, scan.feed)
    scan.feed(b"", final=True)
    if size == 0:
        raise FileError(name, "empty file (no text)")
    return TextFile(path, str(path.resolve()), digest, size, scan.encoding(), _MIME[path.suffix.lower()])


def iter_text(tf: TextFile, window_bytes: int = STREAM_WINDOW) -> Iterator[str]:
    """The text of ``tf`` (exactly `load_document`'s ``Document.text``) as consecutive pieces decoded from
    ``window_bytes`` of the file each. A character split between windows, or a ``\\r\\n`` split between them,
    comes out whole. Raises FileError when the file changed since the scan, or holds no text."""
    name = str(tf.path)
    dec = codecs.getincrementaldecoder(tf.encoding)("strict")
    h = hashlib.sha256()
    cr = False  # a "\r" held back: it may be the first half of "\r\n"
    any_text = False
    try:
        with tf.path.open("rb") as fh:
            while True:
                block = fh.read(window_bytes)
                h.update(block)
                text = dec.decode(block, final=not block)
                if cr:
                    text = "\r" + text
                cr = bool(block) and text.endswith("\r")
                if cr:
                    text = text[:-1]
                text = text.replace("\r\n", "\n")
                any_text = any_text or (bool(text) and not text.isspace())
                if text:
                    yield text
                if not block:
                    break
    except OSError as exc:
        raise _open_error(tf.path, exc) from None
    except UnicodeDecodeError:  # the scan decoded all of it: the file changed in between
        raise FileError(name, "changed while being read: run the ingest again") from None
    if h.hexdigest() != tf.content_hash:
        raise FileError(name, "changed while being read: run the ingest again")
    if not any_text:
        raise FileError(name, "no text (empty or whitespace only)")

