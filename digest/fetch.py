"""Fetching: the only HTTP code. Conditional GET, timeouts, a size cap, politeness per host."""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from digest.config import USER_AGENT, url_is_local

ARXIV_HOSTS = frozenset({"arxiv.org", "export.arxiv.org", "rss.arxiv.org", "www.arxiv.org"})
MAX_RETRY_AFTER = timedelta(days=1)
MAX_REDIRECTS = 5
TOTAL_TIMEOUT_FACTOR = 4


@dataclass
class Throttle:
    """At most one request per `interval` seconds to each throttled host (arXiv asks for 3 s)."""

    interval: float
    hosts: frozenset[str] = ARXIV_HOSTS
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    last: dict[str, float] = field(default_factory=dict)

    def wait(self, url: str) -> None:
        """Sleep until a request to this URL's host is allowed."""
        host = (urlsplit(url).hostname or "").lower()
        if host not in self.hosts:
            return
        previous = self.last.get(host)
        if previous is not None:
            remaining = previous + self.interval - self.clock()
            if remaining > 0:
                self.sleep(remaining)
        self.last[host] = self.clock()


@dataclass(frozen=True)
class Validators:
    """What a previous good fetch of a URL said about its version, sent back to get a 304."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Fetched:
    """The outcome of one GET."""

    status: Literal["ok", "not_modified", "error"]
    content: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    error: str | None = None
    retry_at: datetime | None = None


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """When a 429/503 says to come back: seconds or an HTTP date, capped at one day."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        delay = timedelta(seconds=min(int(value[:12]), int(MAX_RETRY_AFTER.total_seconds())))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, OverflowError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - now
    return now + max(timedelta(0), min(delay, MAX_RETRY_AFTER))


def make_client(timeout: float) -> httpx.Client:
    """An HTTP client naming the project, with timeouts on every phase."""
    return httpx.Client(
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"},
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=False,  # followed by hand, each hop checked (`redirect_problem`)
    )


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses a host name or literal stands for ([] if it does not resolve)."""
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def redirect_problem(origin: str, current: str, target: str) -> str | None:
    """Why a feed at `current` (configured as `origin`) may not be followed to `target`, or None:
    only to http(s), never from https to http, and to a non-public address only when the configured
    URL is itself local."""
    scheme = urlsplit(target).scheme.lower()
    if scheme not in ("http", "https") or not urlsplit(target).hostname:
        return f"redirect to {target[:80]!r} refused: not an http(s) URL"
    if urlsplit(current).scheme.lower() == "https" and scheme != "https":
        return "redirect from https to http refused"
    if not url_is_local(origin, private=True):
        found = _addresses(urlsplit(target).hostname or "")
        if not found:
            return f"redirect to {urlsplit(target).hostname!r} refused: it does not resolve"
        if any(not a.is_global for a in found):
            return f"redirect to {urlsplit(target).hostname!r} refused: not a public address"
    return None


class _TooSlow(Exception):
    pass


def _read_capped(response: httpx.Response, max_bytes: int, deadline: float) -> bytes | None:
    """The body, or None past `max_bytes`; raises _TooSlow past the deadline (a server that drips)."""
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        return None
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            return None
        if time.monotonic() > deadline:
            raise _TooSlow
        chunks.append(chunk)
    return b"".join(chunks)


def fetch(
    client: httpx.Client,
    url: str,
    *,
    now: datetime,
    validators: Validators | None = None,
    max_bytes: int = 50 * 1024 * 1024,
    throttle: Throttle | None = None,
    origin: str | None = None,
) -> Fetched:
    """GET a feed, sending the validators we kept, following at most MAX_REDIRECTS redirects that
    `redirect_problem` allows (judged from `origin`, the configured URL: `url` by default); never
    raises for network or HTTP trouble."""
    headers = {}
    if validators and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    # Each read has the client's timeout; the whole download gets a few of them at most.
    total = TOTAL_TIMEOUT_FACTOR * (client.timeout.read or 30.0)
    request = _Request(client, headers, now, max_bytes, time.monotonic() + total, throttle)
    try:
        return _follow(request, origin or url, url)
    except _TooSlow:
        return Fetched("error", error=f"download took longer than {total:g}s")
    except httpx.TimeoutException:
        return Fetched("error", error=f"timed out after {client.timeout.read:g}s")
    except httpx.HTTPError as exc:
        return Fetched("error", error=f"{type(exc).__name__}: {exc}"[:300])


@dataclass(frozen=True)
class _Request:
    """What every hop of one fetch shares."""

    client: httpx.Client
    headers: dict[str, str]
    now: datetime
    max_bytes: int
    deadline: float
    throttle: Throttle | None


def _follow(request: _Request, origin: str, url: str) -> Fetched:
    """GET `url`, following the redirects `redirect_problem` allows."""
    current = url
    for _hop in range(MAX_REDIRECTS + 1):
        if request.throttle is not None:
            request.throttle.wait(current)
        with request.client.stream("GET", current, headers=request.headers) as response:
            if not response.has_redirect_location:
                return _outcome(response, request.now, request.max_bytes, request.deadline)
            target = urljoin(current, response.headers.get("location", ""))
        if problem := redirect_problem(origin, current, target):
            return Fetched("error", error=problem)
        current = target
    return Fetched("error", error=f"more than {MAX_REDIRECTS} redirects")


def _outcome(response: httpx.Response, now: datetime, max_bytes: int, deadline: float) -> Fetched:
    if response.status_code == 304:
        return Fetched("not_modified")
    if response.status_code in (429, 503):
        when = retry_after(response.headers.get("retry-after"), now)
        return Fetched("error", error=f"HTTP {response.status_code}", retry_at=when)
    if response.status_code >= 400:
        return Fetched("error", error=f"HTTP {response.status_code}")
    content = _read_capped(response, max_bytes, deadline)
    if content is None:
        return Fetched("error", error=f"body larger than {max_bytes} bytes")
    return Fetched(
        "ok",
        content=content,
        etag=response.headers.get("etag"),
        last_modified=response.headers.get("last-modified"),
    )
