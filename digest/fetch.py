"""Fetching: the only HTTP code. Conditional GET, timeouts, a size cap, politeness per host."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx

from digest.config import USER_AGENT

ARXIV_HOSTS = frozenset({"arxiv.org", "export.arxiv.org", "rss.arxiv.org", "www.arxiv.org"})
MAX_RETRY_AFTER = timedelta(days=1)
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
        follow_redirects=True,
        max_redirects=5,
    )


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
    etag: str | None = None,
    last_modified: str | None = None,
    max_bytes: int = 50 * 1024 * 1024,
    throttle: Throttle | None = None,
) -> Fetched:
    """GET a feed, sending the validators we kept; never raises for network or HTTP trouble."""
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    if throttle is not None:
        throttle.wait(url)
    # Each read has the client's timeout; the whole download gets a few of them at most.
    total = TOTAL_TIMEOUT_FACTOR * (client.timeout.read or 30.0)
    try:
        with client.stream("GET", url, headers=headers) as response:
            return _outcome(response, now, max_bytes, time.monotonic() + total)
    except _TooSlow:
        return Fetched("error", error=f"download took longer than {total:g}s")
    except httpx.TimeoutException:
        return Fetched("error", error=f"timed out after {client.timeout.read:g}s")
    except httpx.HTTPError as exc:
        return Fetched("error", error=f"{type(exc).__name__}: {exc}"[:300])


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
