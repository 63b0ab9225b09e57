"""Sending: the one module that owns SMTP (and its stand-in, the outbox folder).

Every message gets exactly one `Result`, classified by where it failed and by the SMTP code:
before the body went out a failure is safe to retry; after it, we cannot know, so `unknown`.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib

from digest.config import Settings, SmtpConfig
from digest.text import PLAIN_ADDRESS


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"  # vetoed just before sending: nothing went out


@dataclass(frozen=True)
class Outgoing:
    """One message ready for the wire."""

    key: int
    sender: str
    recipient: str
    data: bytes
    name: str
    html: str = ""
    # Asked right before the message goes out: a reason not to send it after all (the reader
    # unsubscribed while the batch was under way), or None to go ahead.
    veto: Callable[[], str | None] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Result:
    """What happened to one message. `code` is the SMTP reply code when there was one."""

    key: int
    outcome: Outcome
    detail: str = ""
    code: int | None = None
    permanent_recipient: bool = False


Report = Callable[[Result], None]


class Transport(Protocol):
    """Delivers messages and reports one Result per message, as each completes."""

    def deliver(self, messages: Sequence[Outgoing], report: Report) -> None: ...


MAX_STEM = 120


def safe_filename(text: str) -> str:
    """A file name stem from an address and period: no slashes, no dot at the start, at most
    MAX_STEM characters — a longer one keeps its start and ends with a hash of the whole, so two
    long names never meet in one file."""
    stem = re.sub(r"[^A-Za-z0-9@._+-]", "_", text).lstrip(".") or "message"
    if len(stem) <= MAX_STEM:
        return stem
    return f"{stem[: MAX_STEM - 17]}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class OutboxTransport:
    """Writes each message as `<name>.eml` and `<name>.html` into a folder (the no-SMTP default)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def deliver(self, messages: Sequence[Outgoing], report: Report) -> None:
        if not messages:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for message in messages:
            if message.veto is not None and (reason := message.veto()):
                report(Result(message.key, Outcome.SKIPPED, reason))
                continue
            try:
                self._write(message.name, ".eml", message.data)
                self._write(message.name, ".html", message.html.encode("utf-8"))
            except OSError as exc:
                report(Result(message.key, Outcome.RETRY, f"outbox: {exc}"))
            else:
                report(Result(message.key, Outcome.SENT, "written to outbox"))

    def _write(self, name: str, suffix: str, data: bytes) -> None:
        target = self.folder / (safe_filename(name) + suffix)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)


def run_coroutine(make: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine to completion from sync code, even where this thread already runs a loop
    (a web server, a browser driver): then it gets a fresh loop in a short-lived thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(make())
        return
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(lambda: asyncio.run(make())).result()


def classify(code: int | None, *, body_sent: bool, stage: str) -> Outcome:
    """Map where a failure happened and its reply code to what we do about it."""
    if code is None:
        return Outcome.UNKNOWN if body_sent else Outcome.RETRY
    if 400 <= code < 500:
        return Outcome.RETRY
    if code >= 500 and stage in ("rcpt", "data"):
        return Outcome.FAILED
    return Outcome.RETRY  # a 5xx to MAIL FROM or the greeting is our relay's problem, not the reader's


class RateGate(Protocol):
    """Spaces sends out to a messages-per-second limit."""

    async def wait(self) -> object: ...


class LocalRateGate:
    """A per-process limit: one message every 1/rate seconds."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self.next_at = 0.0
        self.lock: asyncio.Lock | None = None

    async def wait(self) -> None:
        self.lock = self.lock or asyncio.Lock()
        async with self.lock:
            loop = asyncio.get_running_loop()
            delay = self.next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.next_at = max(self.next_at, loop.time()) + self.interval


class RedisRateGate:
    """A limit shared by every worker process: a counter per second in Redis."""

    def __init__(self, url: str, rate: float, key: str = "digest:smtp-rate") -> None:
        self.url = url
        self.rate = max(1, int(rate))
        self.key = key

    async def wait(self) -> int | None:
        """Wait for a slot; returns the second it was granted in (None if Redis was unreachable)."""
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
        try:
            while True:
                now = time.time()
                second = int(now)
                name = f"{self.key}:{second}"
                try:
                    count = await client.incr(name)
                    await client.expire(name, 5)
                except Exception:  # an unreachable Redis must not stop delivery: fall back to no limit
                    return None
                if count <= self.rate:
                    return second
                await asyncio.sleep(second + 1 - now)
        finally:
            await client.aclose()


class SmtpTransport:
    """aiosmtplib over a few reused connections, sending concurrently, optionally rate-limited."""

    def __init__(
        self, config: SmtpConfig, *, timeout: float = 30.0, connections: int = 4, gate: RateGate | None = None
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.connections = connections
        self.gate = gate

    def deliver(self, messages: Sequence[Outgoing], report: Report) -> None:
        if messages:
            run_coroutine(lambda: self._deliver(messages, report))

    async def _deliver(self, messages: Sequence[Outgoing], report: Report) -> None:
        queue: asyncio.Queue[Outgoing] = asyncio.Queue()
        for message in messages:
            queue.put_nowait(message)
        workers = min(self.connections, len(messages))
        await asyncio.gather(*(self._worker(queue, report) for _ in range(workers)))

    def _client(self) -> aiosmtplib.SMTP:
        cfg = self.config
        return aiosmtplib.SMTP(
            hostname=cfg.host, port=cfg.port, timeout=self.timeout, use_tls=cfg.implicit_tls,
            start_tls=cfg.starttls, username=cfg.username, password=cfg.password,
        )  # fmt: skip

    async def _worker(self, queue: asyncio.Queue[Outgoing], report: Report) -> None:
        smtp: aiosmtplib.SMTP | None = None
        while not queue.empty():
            message = queue.get_nowait()
            if message.veto is not None and (reason := message.veto()):
                report(Result(message.key, Outcome.SKIPPED, reason))
                continue
            if smtp is None or not smtp.is_connected:
                smtp = self._client()
                try:
                    await smtp.connect()
                except (aiosmtplib.SMTPException, OSError) as exc:
                    report(Result(message.key, Outcome.RETRY, f"connect: {_describe(exc)}", _code(exc)))
                    smtp = None
                    continue
            if self.gate is not None:
                await self.gate.wait()
            report(await _send_one(smtp, message, self.timeout))
        if smtp is not None and smtp.is_connected:
            try:
                await smtp.quit()
            except (aiosmtplib.SMTPException, OSError):
                smtp.close()


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) and code >= 200 else None


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    code = _code(exc)
    return f"{code} {message}" if code else f"{type(exc).__name__}: {message}"


def dot_stuffed(data: bytes) -> bytes:
    """The DATA payload: lines starting with "." doubled, CRLF-terminated, then the final ".".
    Done once with bytes.replace (C), not with a regex per line as generic clients do."""
    body = data.replace(b"\r\n.", b"\r\n..")
    if body.startswith(b"."):
        body = b"." + body
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return body + b".\r\n"


async def _mail(smtp: aiosmtplib.SMTP, sender: str, plain: bool, timeout: float) -> None:
    if not plain:
        await smtp.mail(sender)
        return
    reply = await smtp.execute_command(b"MAIL", b"FROM:<" + sender.encode() + b">", timeout=timeout)
    if reply.code != 250:
        raise aiosmtplib.SMTPSenderRefused(reply.code, reply.message, sender)


async def _rcpt(smtp: aiosmtplib.SMTP, recipient: str, plain: bool, timeout: float) -> None:
    if not plain:
        await smtp.rcpt(recipient)
        return
    reply = await smtp.execute_command(b"RCPT", b"TO:<" + recipient.encode() + b">", timeout=timeout)
    if reply.code not in (250, 251):
        raise aiosmtplib.SMTPRecipientRefused(reply.code, reply.message, recipient)


async def _send_one(smtp: aiosmtplib.SMTP, message: Outgoing, timeout: float) -> Result:
    # aiosmtplib's mail() and rcpt() parse every address again (a third of their time): a plain
    # address is sent as it is, any other goes through them.
    plain = not smtp.is_ehlo_or_helo_needed and bool(
        PLAIN_ADDRESS.fullmatch(message.sender) and PLAIN_ADDRESS.fullmatch(message.recipient)
    )
    stage = "mail"
    try:
        await _mail(smtp, message.sender, plain, timeout)
        stage = "rcpt"
        await _rcpt(smtp, message.recipient, plain, timeout)
        stage = "data"
        reply = await smtp.execute_command(b"DATA", timeout=timeout)
        if reply.code != 354:
            raise aiosmtplib.SMTPDataError(reply.code, reply.message)
        stage = "body"  # from here on, the message may have reached the relay
        smtp.protocol.write(dot_stuffed(message.data))  # type: ignore[union-attr]
        response = await smtp.protocol.read_response(timeout=timeout)  # type: ignore[union-attr]
        if response.code != 250:
            raise aiosmtplib.SMTPDataError(response.code, response.message)
    except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
        return await _failure(smtp, message, exc, stage)
    return Result(message.key, Outcome.SENT, f"{response.code} {response.message}"[:300], response.code)


async def _failure(smtp: aiosmtplib.SMTP, message: Outgoing, exc: BaseException, stage: str) -> Result:
    code = _code(exc)
    outcome = classify(code, body_sent=stage == "body", stage="data" if stage == "body" else stage)
    if code is not None and smtp.is_connected and code != 421:
        try:
            await smtp.rset()  # reuse the connection for the next message
        except (aiosmtplib.SMTPException, OSError):
            smtp.close()
    elif smtp.is_connected:
        smtp.close()
    permanent = outcome is Outcome.FAILED and stage == "rcpt"
    where = "data" if stage == "body" else stage
    return Result(message.key, outcome, f"{where}: {_describe(exc)}"[:500], code, permanent)


def make_transport(settings: Settings) -> Transport:
    """SMTP when DIGEST_SMTP_URL is set, else the outbox folder."""
    smtp = settings.smtp
    if smtp is None:
        return OutboxTransport(settings.outbox_dir)
    gate: RateGate | None = None
    if settings.smtp_rate_per_second:
        rate = settings.smtp_rate_per_second
        gate = RedisRateGate(settings.broker_url, rate) if settings.broker_url else LocalRateGate(rate)
    return SmtpTransport(smtp, timeout=settings.smtp_timeout, connections=settings.smtp_connections, gate=gate)
