"""EML (a saved e-mail, RFC 5322; stdlib `email`) -> text: the headers that say who, when and what (From, To,
Cc, Date, Subject), the body (text/plain, else its HTML read as text), then each text attachment (text/*:
.txt, .csv, .md, .html...) under a line naming it. Other attachments (images, PDFs, zips) are listed by name
only: they are not opened, so nothing nested can explode."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from ingest.loaders.common import NO_LIMITS, Limits, _describe, text_chars
from ingest.loaders.html import _html_to_text
from rag.errors import FileError

EML_HEADERS = ("From", "To", "Cc", "Date", "Subject")
EML_MAX_PARTS = 1000  # MIME parts walked per message: a crafted one can nest thousands


def _part_text(part: EmailMessage) -> str:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):  # unknown charset, bad transfer encoding
        payload = part.get_payload(decode=True) or b""
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else str(payload)
    if isinstance(content, bytes):
        content = content.decode("utf-8", errors="replace")
    text = str(content).replace("\r\n", "\n")
    if part.get_content_type() == "text/html":
        text = _html_to_text(text)
    return text.strip()


def _eml_text(raw: bytes, name: str, limits: Limits) -> str:
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    if not isinstance(msg, EmailMessage) or not any(msg.get(h) for h in EML_HEADERS):
        raise FileError(name, "not an e-mail (no From, To, Date or Subject header): save it as .eml from your mail "
                        "program")
    blocks = ["\n".join(f"{h}: {' '.join(str(msg.get(h)).split())}" for h in EML_HEADERS if msg.get(h))]
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is not None:
        blocks.append(_part_text(body))  # type: ignore[arg-type]
    others: list[str] = []
    for n, part in enumerate(msg.iter_attachments(), start=1):
        if n > EML_MAX_PARTS:
            raise FileError(name, f"e-mail with over {EML_MAX_PARTS} attachments: not ingested")
        fname = part.get_filename() or f"attachment {n}"
        if part.get_content_maintype() == "text":
            blocks.append(f"Attachment: {fname}\n{_part_text(part)}")  # type: ignore[arg-type]
        else:
            others.append(fname)
        limits.check(name, sum(map(text_chars, blocks)))
    if others:
        blocks.append("Other attachments (not read): " + ", ".join(others))
    return "\n\n".join(b for b in blocks if b)


def _load_eml(raw: bytes, name: str, limits: Limits = NO_LIMITS) -> str:
    try:
        return _eml_text(raw, name, limits)
    except FileError:
        raise
    except Exception as exc:
        raise FileError(name, f"malformed e-mail ({_describe(exc)}): save it again as .eml") from None
