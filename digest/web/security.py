"""What every request and page gets: security headers, a body size cap, CSRF tokens, rate limits."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

import redis
from fastapi import HTTPException, Request
from fastapi.responses import PlainTextResponse

from digest import logs

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSRF_COOKIE = "digest_csrf"
# Under https the cookie is __Host- prefixed: browsers then only accept it Secure, for Path=/ and
# with no Domain, so a sibling subdomain (or a man in the middle on http) cannot plant one.
SECURE_CSRF_COOKIE = "__Host-digest_csrf"
CSRF_FIELD = "csrf_token"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # tokens are in our URLs: never leak them to other sites
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
# Pages and answers that carry a reader's link token or what it gives access to: never kept by a
# browser's or a proxy's cache (a shared computer's history, the back button after leaving).
TOKEN_PATHS = (
    "/confirm/", "/manage/", "/unsubscribe/", "/feedback/", "/view/", "/feed/",
    "/api/confirm/", "/api/manage/", "/api/unsubscribe/", "/api/feedback/",
)  # fmt: skip
NO_STORE = (b"cache-control", b"no-store")


def csrf_cookie_name(base_url: str) -> str:
    """The CSRF cookie's name: __Host- prefixed when the site is served over https."""
    return SECURE_CSRF_COOKIE if base_url.startswith("https://") else CSRF_COOKIE


class SecurityMiddleware:
    """Adds the security headers to every response and refuses bodies over `max_body` bytes."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        logs.new_run("req")
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body:
            await _too_large(send)
            return

        wanted = [*HEADERS, NO_STORE] if str(scope.get("path", "")).startswith(TOKEN_PATHS) else HEADERS

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(n, v) for n, v in wanted if n not in names]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, _capped(receive, self.max_body), with_headers)


def _capped(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge
        return message

    return wrapped


class BodyTooLarge(HTTPException):
    """A request body without Content-Length that grew past the cap (the app answers 413). An
    HTTPException, so FastAPI's body parsing passes it through instead of answering 400."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="Request too large.")


def too_large(_request: Request, _exc: Exception) -> PlainTextResponse:
    """The app's answer to BodyTooLarge."""
    return PlainTextResponse("Request too large.", status_code=413)


async def _too_large(send: Send) -> None:
    body = b"Request too large."
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers + HEADERS})
    await send({"type": "http.response.body", "body": body})


def new_csrf_cookie() -> str:
    """A fresh random value for the CSRF cookie."""
    return secrets.token_urlsafe(24)


def csrf_token(secret: str, cookie: str) -> str:
    """The form field that goes with a CSRF cookie (an attacker can set neither from another site)."""
    return hmac.new(secret.encode(), f"csrf:{cookie}".encode(), hashlib.sha256).hexdigest()


def csrf_ok(secret: str, cookie: str | None, field: str | None) -> bool:
    """Whether a form's CSRF field matches the visitor's cookie."""
    if not cookie or not field:
        return False
    return hmac.compare_digest(csrf_token(secret, cookie), field)


def visitor_key(host: str) -> str:
    """Whom a rate limit counts: an IPv4 address itself, but an IPv6 address by its /64 — one
    machine usually holds a whole /64, so counting per address would not limit it at all. An
    IPv4-mapped IPv6 address counts as its IPv4 address; anything that is no address, as it is."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class RateLimiter(Protocol):
    """Counts hits per key in fixed windows; `hit` returns seconds to wait, or None if allowed."""

    def hit(self, key: str, limit: int, window: int) -> int | None: ...


class MemoryRateLimiter:
    """For a single web process without a broker."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.counts: dict[tuple[str, int], int] = {}
        self.lock = threading.Lock()

    def hit(self, key: str, limit: int, window: int) -> int | None:
        now = self.clock()
        slot = int(now // window)
        with self.lock:
            if len(self.counts) > 100_000:
                self.counts = {k: v for k, v in self.counts.items() if k[1] >= slot}
            count = self.counts.get((key, slot), 0) + 1
            self.counts[(key, slot)] = count
        return None if count <= limit else max(1, int((slot + 1) * window - now))


class RedisRateLimiter:
    """Shared by every web process: counters in Redis with an expiry of one window."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self.clock = clock

    def hit(self, key: str, limit: int, window: int) -> int | None:
        now = self.clock()
        slot = int(now // window)
        name = f"digest:ratelimit:{key}:{slot}"
        try:
            pipe = self.redis.pipeline()
            pipe.incr(name)
            pipe.expire(name, window + 5)
            count = int(pipe.execute()[0])
        except Exception as exc:  # an unreachable Redis must not take sign-up down with it
            log.warning("rate limiter unavailable, allowing the request: %s", exc)
            return None
        return None if count <= limit else max(1, int((slot + 1) * window - now))
