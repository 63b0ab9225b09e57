"""Signed, purpose-bound tokens for the links in every email (no accounts, no passwords)."""

from __future__ import annotations

import hashlib
from enum import StrEnum

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer


class Purpose(StrEnum):
    """Each purpose has its own salt: a manage token never works as an unsubscribe token."""

    CONFIRM = "confirm"
    MANAGE = "manage"
    UNSUBSCRIBE = "unsubscribe"


class TokenError(ValueError):
    """The token is tampered, expired, or for another purpose; the reason is for logs only."""


def _serializer(keys: list[str], purpose: Purpose) -> URLSafeTimedSerializer:
    # itsdangerous signs with the last key and accepts all of them, so old links keep working
    # while DIGEST_SECRET_KEY is rotated.
    return URLSafeTimedSerializer(keys, salt=f"paper-digest.{purpose.value}")


def email_tag(email: str) -> str:
    """A short hash of the address bound into tokens, so a token dies with its address."""
    return hashlib.sha256(email.casefold().encode()).hexdigest()[:12]


def make_token(keys: list[str], purpose: Purpose, subscriber_id: int, email: str) -> str:
    """A URL-safe signed token naming one subscriber, for one purpose."""
    return str(_serializer(keys, purpose).dumps({"s": subscriber_id, "e": email_tag(email)}))


def read_token(keys: list[str], purpose: Purpose, token: str, max_age: int | None = None) -> tuple[int, str]:
    """(subscriber id, email tag) from a token; raises TokenError if it is not valid."""
    try:
        data = _serializer(keys, purpose).loads(token, max_age=max_age)
    except SignatureExpired as exc:
        raise TokenError("expired") from exc
    except BadSignature as exc:
        raise TokenError("bad signature") from exc
    if not isinstance(data, dict) or not isinstance(data.get("s"), int) or not isinstance(data.get("e"), str):
        raise TokenError("malformed payload")
    return data["s"], data["e"]
