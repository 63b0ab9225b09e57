"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives and can misbehave on cue.

How it answers depends on the recipient's local part:
  tempfail-N...@  answers 451 to RCPT the first N times for that address, then accepts
  closing...@     answers 421 to RCPT and closes the connection (every time)
  reject...@      answers 550 to RCPT (a hard bounce)
  drop...@        reads the whole message, then closes the connection without a reply
  slow-S...@      reads the whole message, waits S seconds, then accepts it
anything else is accepted with 250 (after `Behaviour.pause` seconds, 0 by default). A sender whose
local part starts with "refused" gets 553 to MAIL.
"""

from __future__ import annotations

import asyncio
import email
import re
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import free_port


@dataclass
class Received:
    """One message as the server got it: envelope and raw bytes."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    session: int

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Behaviour:
    messages: list[Received] = field(default_factory=list)
    rcpt_attempts: Counter[str] = field(default_factory=Counter)
    sessions: int = 0
    pause: float = 0.0  # seconds to wait before accepting every message (to stretch a run)
    lock: threading.Lock = field(default_factory=threading.Lock)
    slow_started: threading.Event = field(default_factory=threading.Event)  # a slow DATA is waiting


class Handler:
    def __init__(self, state: Behaviour) -> None:
        self.state = state

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.state.lock:
            self.state.sessions += 1
            session.number = self.state.sessions
        session.host_name = hostname
        return responses

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        if address.lower().startswith("refused"):
            return f"553 5.7.1 <{address}>: sender not allowed"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        local = address.partition("@")[0].lower()
        with self.state.lock:
            self.state.rcpt_attempts[address] += 1
            attempts = self.state.rcpt_attempts[address]
        if local.startswith("reject"):
            return f"550 5.1.1 <{address}>: no such user here"
        if local.startswith("closing"):
            asyncio.get_running_loop().call_later(0.05, server.transport.close)
            return "421 4.3.2 service shutting down, closing connection"
        tempfail = re.match(r"tempfail-(\d+)", local)
        if tempfail and attempts <= int(tempfail.group(1)):
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if any(r.lower().startswith("drop") for r in envelope.rcpt_tos):
            server.transport.close()
            return "250 never seen by the client"
        slow = next(
            (re.match(r"slow-(\d+)", r.lower()) for r in envelope.rcpt_tos if r.lower().startswith("slow")), None
        )
        if slow:
            self.state.slow_started.set()
            await asyncio.sleep(int(slow.group(1)))
        elif self.state.pause:
            await asyncio.sleep(self.state.pause)
        received = Received(
            envelope.mail_from, list(envelope.rcpt_tos), envelope.content, getattr(session, "number", 0)
        )
        with self.state.lock:
            self.state.messages.append(received)
        return "250 2.0.0 Message accepted"


@dataclass
class SmtpServer:
    host: str
    port: int
    state: Behaviour

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    @property
    def messages(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.messages)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


@contextmanager
def running_smtp_server() -> Iterator[SmtpServer]:
    """A real aiosmtpd server on a free loopback port, for as long as the block runs."""
    state = Behaviour()
    port = free_port()
    controller = Controller(Handler(state), hostname="127.0.0.1", port=port, data_size_limit=0)
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, state)
    finally:
        controller.stop()


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real aiosmtpd server on a free loopback port for the duration of a test."""
    with running_smtp_server() as server:
        yield server
