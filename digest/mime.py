"""Building the MIME message: a pure function from a rendered digest and its headers to bytes.

Each body goes as quoted-printable or base64, whichever is smaller (quoted-printable for the mostly
ASCII text and HTML: a fifth smaller than base64 for the HTML), encoded by binascii (C); headers
are folded and RFC 2047-encoded here, so building a message costs well under a millisecond.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, parseaddr
from functools import lru_cache

from digest.render import RenderedDigest
from digest.text import PLAIN_ADDRESS, squash

QP_LINES_MAX = 50_000  # encoded lines kept per generation: a day's cards, some MB


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


def _address(value: str) -> str:
    """An address as the From or To header shows it; a HeaderError if it cannot be sent safely.
    A bare everyday address (every reader's, nearly) is taken as it is: parsing costs more than
    the rest of the headers together."""
    return value if PLAIN_ADDRESS.fullmatch(value) else _parsed_address(value)


@lru_cache(maxsize=1_000)
def _parsed_address(value: str) -> str:
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


class _LineCache:
    """Quoted-printable lines already encoded, in two generations: when the new one is full it
    becomes the old one, so the lines every reader shares (the cards' HTML and text) stay, and the
    ones only one reader has (their vote links) are dropped with the generation before. A shared
    piece's run of whole lines is kept the same way, under (piece, start, end)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.new: dict[Hashable, bytes] = {}
        self.old: dict[Hashable, bytes] = {}

    def _keep(self, key: Hashable, data: bytes) -> bytes:
        if len(self.new) >= self.size:
            self.old, self.new = self.new, {}
        self.new[key] = data
        return data

    def encode(self, line: str) -> bytes:
        data = self.old.get(line)
        if data is None:
            # A line's own CRLF makes binascii's soft breaks CRLF too (it follows the first break).
            data = binascii.b2a_qp(line.encode("utf-8") + b"\r\n", istext=True)
        return self._keep(line, data)

    def join(self, lines: list[str]) -> bytes:
        """The lines encoded, each from the cache when it is there, as one body."""
        get, encode = self.new.get, self.encode
        return b"".join([get(line) or encode(line) for line in lines])

    def run(self, piece: str, start: int, end: int) -> bytes:
        """The whole lines piece[start:end] encoded, from the cache when they are there."""
        key = (piece, start, end)
        data = self.new.get(key)
        if data is None:  # not in this generation: from the one before, or encoded now
            data = self._keep(key, self.old.get(key) or self.join(piece[start:end].split("\n")))
        return data


_QP_LINES = _LineCache(QP_LINES_MAX)


def _runs(text: str, shared: Sequence[str]) -> list[tuple[int, int, str | None]]:
    """`text` cut at line breaks into runs of whole lines: (start, end, piece) for a shared piece's
    lines, `piece[start:end]` (its first line too when it starts one, its last when it ends one),
    and (start, end, None) for the lines between, `text[start:end]`. Every line is in exactly one
    run; a piece not found, or holding no whole line, is left to the lines around it."""
    runs: list[tuple[int, int, str | None]] = []
    pos, size = 0, len(text)
    for piece in shared:
        at = text.find(piece[:64], pos) if piece else -1  # a short needle is found faster
        if at >= 0 and not text.startswith(piece, at):
            at = text.find(piece, at + 1)
        if at < 0:
            continue
        end = at + len(piece)
        starts_line = at == 0 or text[at - 1] == "\n"
        first = 0 if starts_line else piece.find("\n") + 1  # its first whole line (0 here: none)
        last = len(piece) if end == size or text[end] == "\n" else piece.rfind("\n")
        if (first == 0 and not starts_line) or last <= first:
            continue  # no line of the piece starts and ends inside it
        if at + first > pos:
            runs.append((pos, at + first - 1, None))  # the lines before: up to the break before the piece's
        runs.append((first, last, piece))
        pos = at + last + 1  # past the piece's last line break
    if pos <= size:
        runs.append((pos, size, None))
    return runs


def quoted_printable(text: str, shared: Sequence[str] = ()) -> bytes:
    """Quoted-printable in CRLF lines of at most 76 characters. Line breaks become CRLF (text's
    canonical form) and nothing is added, so it decodes to the same text. Encoded a line at a time,
    each line once (binascii, C) and then from a cache: quoted-printable ends each line on its own,
    so the lines join to the same bytes as the whole text encoded at once, and a card's lines are
    encoded once for all the readers who get it (three times faster than encoding each message).
    `shared`: pieces of the text many messages hold (the cards' bodies), in the order they appear:
    each one's lines are looked up as one run instead of line by line."""
    if "\r" in text:
        text, shared = text.replace("\r\n", "\n").replace("\r", "\n"), ()
    if not shared:
        return _QP_LINES.join(text.split("\n"))[:-2]
    parts = [
        _qp(text[start:end]) if piece is None else _QP_LINES.run(piece, start, end)
        for start, end, piece in _runs(text, shared)
    ]
    return b"".join(parts)[:-2]


def _qp(lines: str) -> bytes:
    """The lines between shared pieces: a few between two cards are mostly the reader's own (their
    vote links), seen once and encoded in one call; many (the head, the foot) are mostly the same
    in every digest, and come from the cache a line at a time."""
    if lines.count("\n") >= 8:
        return _QP_LINES.join(lines.split("\n"))
    return binascii.b2a_qp(lines.replace("\n", "\r\n").encode("utf-8") + b"\r\n", istext=True)


def base64_lines(text: str) -> bytes:
    """base64 in 76-character CRLF lines, all in C: the HTML part is large, and the encoder per
    message is what a fast sender cannot afford to be slow."""
    data = binascii.b2a_base64(text.encode("utf-8"), newline=False)
    return b"\r\n".join([data[i : i + 76] for i in range(0, len(data), 76)]) + b"\r\n"


def base64_size(text: str) -> int:
    """How long `base64_lines(text)` is, without encoding it."""
    chars = 4 * -(-len(text.encode("utf-8")) // 3)
    return chars + 2 * max(1, -(-chars // 76))


def encoded_body(text: str, shared: Sequence[str] = ()) -> tuple[bytes, str]:
    """A body and its Content-Transfer-Encoding: quoted-printable unless base64 is smaller (text in a
    non-Latin script, where nearly every byte would be =XX); both keep lines within 76 characters."""
    qp = quoted_printable(text, shared)
    # base64 takes at least 4 bytes per 3 characters: a body within that needs no exact count
    if 3 * len(qp) <= 4 * len(text) or len(qp) <= base64_size(text):
        return qp, "quoted-printable"
    return base64_lines(text), "base64"


def _part(content_type: str, text: str, shared: Sequence[str]) -> bytes:
    body, encoding = encoded_body(text, shared)
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
    text = rendered.text if rendered.text.endswith("\n") else rendered.text + "\n"  # ends as a text file does
    lines += [sep, _part("text/plain", text, rendered.shared_text)]
    lines += [sep, _part("text/html", rendered.html, rendered.shared_html)]
    lines.append(f"--{boundary}--\r\n".encode())
    return b"".join(lines)
