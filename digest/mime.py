"""Building the MIME message: a pure function from a rendered digest and its headers to bytes.

The text body is quoted-printable and the HTML body base64, both encoded by binascii (C); headers
are folded and RFC 2047-encoded here, so building a message costs well under a millisecond.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from digest.render import RenderedDigest
from digest.text import squash


class HeaderError(ValueError):
    """A header value that cannot be sent safely."""


@dataclass(frozen=True)
class Headers:
    """The envelope-level facts of one email."""

    sender: str
    recipient: str
    date: datetime
    message_id: str
    list_id: str | None = None
    unsubscribe_url: str | None = None


@lru_cache(maxsize=64)
def envelope_sender(address: str) -> str:
    """The bare address of `Name <addr>` (for MAIL FROM)."""
    return parseaddr(address)[1]


@lru_cache(maxsize=64)
def domain_of(address: str) -> str:
    """The domain part of an address (or of `Name <addr>`), for Message-ID and List-Id."""
    _name, addr = parseaddr(address)
    return addr.rpartition("@")[2] if "@" in addr else "localhost"


def make_message_id(secret: str, subscriber_id: int, period: str, domain: str) -> str:
    """Deterministic per (subscriber, period), so a resend is recognisably the same message."""
    digest = hmac.new(secret.encode(), f"{subscriber_id}:{period}".encode(), hashlib.sha256).hexdigest()
    return f"<digest.{period}.{digest[:24]}@{domain}>"


def _fold_ascii(name: str, value: str) -> str:
    """Fold an ASCII header at spaces near 78 columns; a long word (a URL) stays whole."""
    line, out = f"{name}:", []
    for word in value.split(" "):
        if len(line) + 1 + len(word) > 78 and line.strip() and not line.endswith(":"):
            out.append(line)
            line = " " + word
        else:
            line += " " + word
    out.append(line)
    return "\r\n".join(out) + "\r\n"


def encode_words(text: str) -> str:
    """RFC 2047 base64 encoded-words of at most 75 characters, split on character boundaries."""
    words, chunk = [], b""
    for ch in text:
        b = ch.encode("utf-8")
        if len(chunk) + len(b) > 45:  # 45 bytes -> 60 base64 chars + 12 of framing
            words.append(chunk)
            chunk = b""
        chunk += b
    words.append(chunk)
    return " ".join(f"=?utf-8?b?{binascii.b2a_base64(w, newline=False).decode()}?=" for w in words)


@lru_cache(maxsize=100_000)
def _address(value: str) -> str:
    if any(c in value for c in "\r\n\x00"):
        raise HeaderError(f"line break in an address: {value!r}")
    name, addr = parseaddr(value)
    if not addr or "@" not in addr or not addr.isascii():
        raise HeaderError(f"not a deliverable address: {value!r}")
    if not name:
        return addr
    shown = name if name.isascii() else encode_words(name)
    if name.isascii() and any(c in name for c in '()<>[]:;@\\,."'):
        shown = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{shown} <{addr}>"


def _header(name: str, value: str) -> bytes:
    clean = squash(value)
    if not clean:
        raise HeaderError(f"{name} is empty")
    if not clean.isascii():
        clean = encode_words(clean)
    if len(clean) > 900:
        raise HeaderError(f"{name} is too long")
    return _fold_ascii(name, clean).encode("ascii")


def _qp(text: str) -> bytes:
    body = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")
    if not body.endswith("\r\n"):
        body += "\r\n"
    return binascii.b2a_qp(body.encode("utf-8"), istext=True)


def _b64(text: str) -> bytes:
    """base64 in 76-character CRLF lines, all in C: the HTML part is large, and the encoder per
    message is what a fast sender cannot afford to be slow."""
    data = binascii.b2a_base64(text.encode("utf-8"), newline=False)
    return b"\r\n".join([data[i : i + 76] for i in range(0, len(data), 76)]) + b"\r\n"


def _part(content_type: str, body: bytes, encoding: str) -> bytes:
    header = f'Content-Type: {content_type}; charset="utf-8"\r\nContent-Transfer-Encoding: {encoding}\r\n\r\n'
    return header.encode() + body + b"\r\n"  # the CRLF before a boundary belongs to the boundary


def build_message(rendered: RenderedDigest, headers: Headers) -> bytes:
    """The full RFC 5322 message: multipart/alternative with the text and HTML bodies."""
    boundary = "=_" + hashlib.sha256(headers.message_id.encode()).hexdigest()[:32]
    lines = [
        _header("From", _address(headers.sender)),
        _header("To", _address(headers.recipient)),
        _header("Subject", rendered.subject),
        _header("Date", format_datetime(headers.date)),
        _header("Message-ID", headers.message_id),
        b"MIME-Version: 1.0\r\n",
    ]
    if headers.list_id:
        lines.append(_header("List-Id", headers.list_id))
    if headers.unsubscribe_url:
        lines.append(_header("List-Unsubscribe", f"<{headers.unsubscribe_url}>"))
        lines.append(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    lines.append(b"X-Auto-Response-Suppress: OOF, AutoReply\r\n")
    lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n\r\n'.encode())
    sep = f"--{boundary}\r\n".encode()
    text_part = _part("text/plain", _qp(rendered.text), "quoted-printable")  # readable as it travels
    lines += [sep, text_part, sep, _part("text/html", _b64(rendered.html), "base64")]
    lines.append(f"--{boundary}--\r\n".encode())
    return b"".join(lines)
