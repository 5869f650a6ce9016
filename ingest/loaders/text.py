"""Text bytes -> str: a BOM decides (UTF-8/16/32), else UTF-8, else cp1252 then latin-1 for legacy files;
binary and undecodable files are refused with a one-line reason."""

from __future__ import annotations

from rag.errors import FileError

_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (b"\xef\xbb\xbf", "utf-8-sig"),
    (b"\xff\xfe\x00\x00", "utf-32"),
    (b"\x00\x00\xfe\xff", "utf-32"),
    (b"\xff\xfe", "utf-16"),
    (b"\xfe\xff", "utf-16"),
)
# C0 controls that ordinary text never contains (tab, newline, form feed, carriage return and ESC are fine)
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 12, 13, 27))
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL)
_ASCII = bytes(range(128))
_CP1252_UNDEFINED = b"\x81\x8d\x8f\x90\x9d"  # the five bytes cp1252 leaves undefined (latin-1 maps them)
_SNIFF = 1 << 16


def _looks_binary(sample: bytes) -> bool:
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    control = len(sample.translate(None, _NOT_CONTROL))
    return control / len(sample) > 0.10


def _mostly_non_ascii(sample: bytes) -> bool:
    """Western text in cp1252/latin-1 is mostly ASCII; a sample that is not is some other legacy encoding
    (Greek, Cyrillic, CJK...) that cp1252 would turn into mojibake. Too short a sample proves nothing."""
    return len(sample) >= 32 and len(sample.translate(None, _ASCII)) / len(sample) > 0.30


_BINARY = "looks binary, not text: convert it to a text format first"
_UNDECODABLE = "undecodable text (not UTF-8, not Western cp1252/latin-1): re-save it as UTF-8"


def _bom_encoding(head: bytes) -> str | None:
    return next((enc for bom, enc in _BOMS if head.startswith(bom)), None)


def _invalid(enc: str, exc: UnicodeDecodeError) -> str:
    return f"invalid {enc} text ({exc.reason}): re-save it as UTF-8"


def decode_text(raw: bytes, name: str) -> str:
    """Decode text bytes: a BOM decides (UTF-8/16/32), else UTF-8, else cp1252 then latin-1 for legacy files."""
    enc = _bom_encoding(raw)
    if enc is not None:
        try:
            text = raw.decode(enc)
        except UnicodeDecodeError as exc:
            raise FileError(name, _invalid(enc, exc)) from None
    else:
        text = _decode_without_bom(raw, name)
    if "\x00" in text:
        raise FileError(name, _BINARY)
    return text


def _decode_without_bom(raw: bytes, name: str) -> str:
    sample = raw[:_SNIFF]
    if _looks_binary(sample):
        raise FileError(name, _BINARY)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if _mostly_non_ascii(sample):
        raise FileError(name, _UNDECODABLE)
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:  # cp1252 leaves five bytes undefined; latin-1 maps every byte
        return raw.decode("latin-1")


def _load_text(raw: bytes, name: str) -> str:
    return decode_text(raw, name).replace("\r\n", "\n")

