"""Signed, purpose-bound tokens for the links in every email (no accounts, no passwords)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
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


def make_token(keys: list[str], purpose: Purpose, handle: str, stamp: int | None = None, *, now: datetime) -> str:
    """A URL-safe signed token naming one subscriber by their opaque handle, for one purpose, signed
    at `now`. Its readable payload says nothing about the list or the address."""
    payload: dict[str, object] = {"h": handle}
    if stamp is not None:
        payload["t"] = stamp
    return str(_serializer(keys, purpose, now).dumps(payload))


def _load(keys: list[str], purpose: Purpose, token: str, now: datetime, max_age: int | None) -> dict[str, Any]:
    """The payload of a valid token, or TokenError."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("too long")
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


# Feedback links are the one token made per card (two per paper in every digest), so they have
# their own compact format instead of itsdangerous's serializer (~25 µs a token, most of a digest's
# signing time): base64url(JSON payload) "." base64url(HMAC-SHA256 tag, 128 bits), the key derived
# once per secret for this purpose. Links from before this format still read (`_load`).
_FEEDBACK_SALT = b"paper-digest.feedback.v2"
_FEEDBACK_TAG_BYTES = 16


@lru_cache(maxsize=16)
def _feedback_key(secret: str) -> bytes:
    return hmac.digest(secret.encode(), _FEEDBACK_SALT, "sha256")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _feedback_tag(secret: str, body: str) -> bytes:
    return hmac.digest(_feedback_key(secret), body.encode(), "sha256")[:_FEEDBACK_TAG_BYTES]


def make_feedback_token(
    keys: list[str], handle: str, paper_id: str, value: int, tag: str | None, *, now: datetime
) -> str:
    """A signed "more like this" (+1) or "less like this" (-1) token for one reader and one paper,
    issued at `now` and signed with the newest key."""
    payload: dict[str, object] = {"h": handle, "p": paper_id, "v": value, "i": int(now.timestamp())}
    if tag is not None:
        payload["k"] = tag
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{body}.{_b64(_feedback_tag(keys[-1], body))}"


def _load_feedback(keys: list[str], token: str, now: datetime, max_age: int | None) -> dict[str, Any]:
    """The payload of a valid compact feedback token (any of the keys signed it), or TokenError."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("too long")
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
    if token.count(".") == 1:
        data = _load_feedback(keys, token, now, max_age)
    else:  # a link from a digest sent before the compact format
        data = _load(keys, Purpose.FEEDBACK, token, now, max_age)
    handle, paper_id, value, tag = data.get("h"), data.get("p"), data.get("v"), data.get("k")
    if not (isinstance(handle, str) and isinstance(paper_id, str) and value in (1, -1) and type(value) is int):
        raise TokenError("malformed payload")
    return FeedbackData(handle, paper_id, value, tag if isinstance(tag, str) else None)
