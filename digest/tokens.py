"""Signed, purpose-bound tokens for the links in every email (no accounts, no passwords)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

MAX_TOKEN_CHARS = 512


class Purpose(StrEnum):
    """Each purpose has its own salt: a manage token never works as an unsubscribe token."""

    CONFIRM = "confirm"
    MANAGE = "manage"
    UNSUBSCRIBE = "unsubscribe"
    FEEDBACK = "feedback"
    VIEW = "view"  # one past digest in the browser (its delivery row's id is the stamp)
    FEED = "feed"  # the reader's personal Atom feed (the stamp says which reset it belongs to)


class TokenError(ValueError):
    """The token is tampered, expired, or for another purpose; the reason is for logs only."""


class _SignerAt(TimestampSigner):
    """A timestamp signer whose "now" is given, not read from the wall clock: a token is stamped
    with the time it is made for, and its age is measured at the time it is read for."""

    def __init__(self, *args: Any, now: datetime, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.now = int(now.timestamp())

    def get_timestamp(self) -> int:
        return self.now


def _serializer(keys: list[str], purpose: Purpose, now: datetime) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts all of them, so old links keep working
    # while DIGEST_SECRET_KEY is rotated.
    return URLSafeTimedSerializer(
        keys, salt=f"paper-digest.{purpose.value}", signer=_SignerAt, signer_kwargs={"now": now}
    )


def email_tag(email: str) -> str:
    """A short hash of the address bound into tokens, so a token dies with its address."""
    return hashlib.sha256(email.casefold().encode()).hexdigest()[:12]


@dataclass(frozen=True)
class TokenData:
    """What a valid token says: whose it is (their random handle; tokens made before handles name
    the row id and an address tag instead), and for confirmation links which request issued it."""

    handle: str | None
    stamp: int | None = None
    subscriber_id: int | None = None  # legacy tokens only
    email_tag: str | None = None  # legacy tokens only


# Every email carries three of these (manage, unsubscribe, its own page), so they are a compact
# binary format made in a few microseconds instead of itsdangerous's ~40: base64url of
#   version 4 (u8) · purpose (u8) · flags (u8: 1 = has a stamp) · issued at (u32 seconds) ·
#   [stamp (i64)] · handle (UTF-8, the rest) · keyed BLAKE2b tag (128 bits)
# with the key derived once per secret and purpose, and the purpose in the payload too. Links
# made before it (itsdangerous's, with two ".") still read.
_COMPACT = 4
_COMPACT_HEAD = struct.Struct(">BBBI")
_STAMP = struct.Struct(">q")
_HAS_STAMP = 1
_COMPACT_TAG_BYTES = 16
_PURPOSE_CODES = {
    Purpose.CONFIRM: 1,
    Purpose.MANAGE: 2,
    Purpose.UNSUBSCRIBE: 3,
    Purpose.FEEDBACK: 4,
    Purpose.VIEW: 5,
    Purpose.FEED: 6,
}


@lru_cache(maxsize=64)
def _compact_key(secret: str, purpose: Purpose) -> bytes:
    return hmac.digest(secret.encode(), f"paper-digest.compact.{purpose.value}".encode(), "sha256")


def _compact_tag(secret: str, purpose: Purpose, payload: bytes) -> bytes:
    return hashlib.blake2b(payload, key=_compact_key(secret, purpose), digest_size=_COMPACT_TAG_BYTES).digest()


def make_token(keys: list[str], purpose: Purpose, handle: str, stamp: int | None = None, *, now: datetime) -> str:
    """A URL-safe signed token naming one subscriber by their opaque handle, for one purpose, signed
    at `now` with the newest key. Its readable payload says nothing about the list or the address.
    A feed's token keeps the format it had (itsdangerous's): its address is the reader's for good,
    the same every time it is shown, so it must not change under a feed reader subscribed to it."""
    if purpose is Purpose.FEED:
        payload: dict[str, object] = {"h": handle} if stamp is None else {"h": handle, "t": stamp}
        return str(_serializer(keys, purpose, now).dumps(payload))
    head = _COMPACT_HEAD.pack(
        _COMPACT, _PURPOSE_CODES[purpose], _HAS_STAMP if stamp is not None else 0, int(now.timestamp())
    )
    packed = head + (_STAMP.pack(stamp) if stamp is not None else b"") + handle.encode()
    return _b64(packed + _compact_tag(keys[-1], purpose, packed))


def _read_compact(keys: list[str], purpose: Purpose, token: str, now: datetime, max_age: int | None) -> dict[str, Any]:
    """The payload of a valid compact token, in itsdangerous's keys, or TokenError."""
    try:
        raw = _unb64(token)
    except ValueError as exc:
        raise TokenError("bad signature") from exc
    payload, given = raw[:-_COMPACT_TAG_BYTES], raw[-_COMPACT_TAG_BYTES:]
    if len(payload) < _COMPACT_HEAD.size or not any(
        hmac.compare_digest(given, _compact_tag(key, purpose, payload)) for key in keys
    ):
        raise TokenError("bad signature")
    version, code, flags, issued = _COMPACT_HEAD.unpack_from(payload)
    at = _COMPACT_HEAD.size + (_STAMP.size if flags & _HAS_STAMP else 0)
    if version != _COMPACT or code != _PURPOSE_CODES[purpose] or len(payload) <= at:
        raise TokenError("malformed payload")
    try:
        data: dict[str, Any] = {"h": payload[at:].decode()}
    except UnicodeDecodeError as exc:
        raise TokenError("malformed payload") from exc
    if flags & _HAS_STAMP:
        data["t"] = _STAMP.unpack_from(payload, _COMPACT_HEAD.size)[0]
    age = now.timestamp() - issued
    if max_age is not None and (age > max_age or age < 0):  # as itsdangerous: a token from the future too
        raise TokenError("expired")
    return data


def _load(keys: list[str], purpose: Purpose, token: str, now: datetime, max_age: int | None) -> dict[str, Any]:
    """The payload of a valid token, or TokenError."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("too long")
    if "." not in token:  # base64url has no ".": the compact format
        return _read_compact(keys, purpose, token, now, max_age)
    try:
        data = _serializer(keys, purpose, now).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise TokenError("expired") from exc
    except BadSignature as exc:
        raise TokenError("bad signature") from exc
    if not isinstance(data, dict):
        raise TokenError("malformed payload")
    return data


def read_token(
    keys: list[str], purpose: Purpose, token: str, *, now: datetime, max_age: int | None = None
) -> TokenData:
    """What a token says at `now`; raises TokenError if it is tampered, expired (older than
    `max_age` seconds), or for another purpose."""
    data = _load(keys, purpose, token, now, max_age)
    stamp = data.get("t") if isinstance(data.get("t"), int) else None
    if isinstance(data.get("h"), str):
        return TokenData(data["h"], stamp)
    if isinstance(data.get("s"), int) and isinstance(data.get("e"), str):  # links in emails sent before handles
        return TokenData(None, stamp, data["s"], data["e"])
    raise TokenError("malformed payload")


@lru_cache(maxsize=100_000)
def topic_tag(topic: str) -> str:
    """A short hash of a topic's text: a feedback link names the topic by it, not by its words."""
    return hashlib.sha256(topic.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class FeedbackData:
    """What a feedback link says: whose vote, on which paper, which way, and the tag of the topic
    the paper matched (None when it came in for no topic, e.g. trending)."""

    handle: str
    paper_id: str
    value: int
    topic_tag: str | None


# Feedback links are the one token made per card (two per paper in every digest, each in both
# parts of the email), so they have their own compact binary format instead of itsdangerous's
# serializer (~25 µs and ~200 characters a token): base64url of
#   version 4 · flags (1: "less", 2: a topic tag follows) · issued at (u32 seconds) · [topic tag,
#   4 bytes] · handle length (u8) · handle · paper id (UTF-8, the rest) · keyed BLAKE2b tag (128 bits)
# with the key derived once per secret for this purpose: ~70 characters for an arXiv paper, made in
# about two microseconds. Links in emails sent before it still read: version 3 (the same layout with
# an HMAC-SHA256 tag), the JSON format of v2 (one ".") and itsdangerous's (two).
_FEEDBACK_SALT = b"paper-digest.feedback.v2"
_FEEDBACK_V3_SALT = b"paper-digest.feedback.v3"
_FEEDBACK_TAG_BYTES = 16
_V3 = 3
_V4 = 4  # v3's layout with a keyed BLAKE2b tag: a quarter of HMAC-SHA256's time (two per card)
_FEEDBACK_V4_SALT = b"paper-digest.feedback.v4"
_LESS, _TAGGED = 1, 2
_V3_HEAD = struct.Struct(">BBI")  # version, flags, issued at


@lru_cache(maxsize=16)
def _feedback_key(secret: str, salt: bytes = _FEEDBACK_SALT) -> bytes:
    return hmac.digest(secret.encode(), salt, "sha256")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _feedback_tag(secret: str, body: str) -> bytes:
    return hmac.digest(_feedback_key(secret), body.encode(), "sha256")[:_FEEDBACK_TAG_BYTES]


def _v3_mac(secret: str, payload: bytes) -> bytes:
    return hmac.digest(_feedback_key(secret, _FEEDBACK_V3_SALT), payload, "sha256")[:_FEEDBACK_TAG_BYTES]


def _v4_mac(secret: str, payload: bytes) -> bytes:
    key = _feedback_key(secret, _FEEDBACK_V4_SALT)
    return hashlib.blake2b(payload, key=key, digest_size=_FEEDBACK_TAG_BYTES).digest()


def make_feedback_token(
    keys: list[str], handle: str, paper_id: str, value: int, tag: str | None, *, now: datetime
) -> str:
    """A signed "more like this" (+1) or "less like this" (-1) token for one reader and one paper,
    issued at `now` and signed with the newest key; `tag` is a `topic_tag` (8 hex digits) or None."""
    return feedback_signer(keys, handle, now=now)(paper_id, value, tag)


FeedbackSigner = Callable[[str, int, str | None], str]


def feedback_signer(keys: list[str], handle: str, *, now: datetime) -> FeedbackSigner:
    """`make_feedback_token` for one reader at one moment, as (paper id, value, tag) -> token: a
    digest signs two per card, so what they share (the head, the handle, the keyed hash's state,
    each topic tag's bytes) is made once."""
    issued = int(now.timestamp())
    heads = [_V3_HEAD.pack(_V4, flags, issued) for flags in range(4)]  # indexed by the flags
    name = handle.encode()
    reader = bytes((len(name),)) + name
    keyed = hashlib.blake2b(key=_feedback_key(keys[-1], _FEEDBACK_V4_SALT), digest_size=_FEEDBACK_TAG_BYTES)
    tags: dict[str, bytes] = {}

    def sign(paper_id: str, value: int, tag: str | None) -> str:
        if tag is None:
            head, tagged = heads[_LESS if value < 0 else 0], b""
        else:
            head = heads[(_LESS if value < 0 else 0) | _TAGGED]
            tagged = tags.get(tag) or tags.setdefault(tag, bytes.fromhex(tag))
        payload = b"".join((head, tagged, reader, paper_id.encode()))
        mac = keyed.copy()
        mac.update(payload)
        return _b64(payload + mac.digest())

    return sign


def _read_v3(keys: list[str], token: str, now: datetime, max_age: int | None) -> dict[str, Any]:
    """The payload of a valid binary feedback token, in the older formats' keys, or TokenError."""
    try:
        raw = _unb64(token)
    except ValueError as exc:
        raise TokenError("bad signature") from exc
    payload, given = raw[:-_FEEDBACK_TAG_BYTES], raw[-_FEEDBACK_TAG_BYTES:]
    mac = _v4_mac if payload[:1] == bytes((_V4,)) else _v3_mac  # the version says which tag to check
    if len(payload) < _V3_HEAD.size or not any(hmac.compare_digest(given, mac(key, payload)) for key in keys):
        raise TokenError("bad signature")
    version, flags, issued = _V3_HEAD.unpack_from(payload)
    at = _V3_HEAD.size + (4 if flags & _TAGGED else 0)
    if version not in (_V3, _V4) or len(payload) <= at:
        raise TokenError("malformed payload")
    tag = payload[_V3_HEAD.size : at].hex() if flags & _TAGGED else None
    end = at + 1 + payload[at]
    try:
        handle, paper_id = payload[at + 1 : end].decode(), payload[end:].decode()
    except UnicodeDecodeError as exc:
        raise TokenError("malformed payload") from exc
    if len(payload) <= end or not handle:
        raise TokenError("malformed payload")
    if max_age is not None and now.timestamp() - issued > max_age:
        raise TokenError("expired")
    return {"h": handle, "p": paper_id, "v": -1 if flags & _LESS else 1, "i": issued, "k": tag}


def _load_feedback(keys: list[str], token: str, now: datetime, max_age: int | None) -> dict[str, Any]:
    """The payload of a valid v2 (JSON) feedback token (any of the keys signed it), or TokenError."""
    body, _, mac = token.partition(".")
    try:
        given = _unb64(mac)
        data = json.loads(_unb64(body))
    except ValueError as exc:  # binascii.Error and JSONDecodeError are ValueErrors
        raise TokenError("bad signature") from exc
    if not any(hmac.compare_digest(given, _feedback_tag(key, body)) for key in keys):
        raise TokenError("bad signature")
    if not isinstance(data, dict) or type(data.get("i")) is not int:
        raise TokenError("malformed payload")
    if max_age is not None and now.timestamp() - data["i"] > max_age:
        raise TokenError("expired")
    payload: dict[str, Any] = data
    return payload


def read_feedback_token(keys: list[str], token: str, *, now: datetime, max_age: int | None) -> FeedbackData:
    """What a feedback token says at `now`, or TokenError (tampered, expired, another purpose)."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("too long")
    dots = token.count(".")
    if dots == 0:
        data = _read_v3(keys, token, now, max_age)
    elif dots == 1:  # a link from a digest sent before the binary format
        data = _load_feedback(keys, token, now, max_age)
    else:  # before the compact formats
        data = _load(keys, Purpose.FEEDBACK, token, now, max_age)
    handle, paper_id, value, tag = data.get("h"), data.get("p"), data.get("v"), data.get("k")
    if not (isinstance(handle, str) and isinstance(paper_id, str) and value in (1, -1) and type(value) is int):
        raise TokenError("malformed payload")
    return FeedbackData(handle, paper_id, value, tag if isinstance(tag, str) else None)
