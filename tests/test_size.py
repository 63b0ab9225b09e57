"""Bytes on the wire (issue 15): the sample digests stay small, and their HTML goes quoted-printable."""

from __future__ import annotations

import email
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from bench.size import AT_CAPS, GMAIL_CLIP, send_samples
from digest.clock import utcnow
from digest.demo import demo_readers

AVERAGE_MAX = 40_000  # bytes: issue 15's "40 KB on the wire for the average digest"


@pytest.fixture(scope="module")
def outbox(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    folder = tmp_path_factory.mktemp("size")
    return folder / "outbox", send_samples(folder)


def _parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_the_average_demo_digest_is_under_40_kb(outbox: tuple[Path, dict[str, bytes]]) -> None:
    _folder, messages = outbox
    sizes = [len(messages[address]) for address, _prefs in demo_readers(utcnow())]
    assert sum(sizes) / len(sizes) < AVERAGE_MAX, sizes


def test_a_digest_at_the_cap_is_under_gmails_clipping_limit(outbox: tuple[Path, dict[str, bytes]]) -> None:
    _folder, messages = outbox
    data = messages[AT_CAPS[0][0]]
    html = _parse(data).get_body(("html",))
    assert html is not None and str(html.get_content()).count('class="card"') == AT_CAPS[0][1].max_papers
    assert len(data) < GMAIL_CLIP


def test_every_digest_is_quoted_printable_in_short_lines_and_decodes_to_its_html(
    outbox: tuple[Path, dict[str, bytes]],
) -> None:
    folder, messages = outbox
    for path in folder.glob("*.eml"):
        data = path.read_bytes()
        lines = data.split(b"\r\n")
        assert b"\n" not in b"".join(lines) and all(line.isascii() for line in lines)
        assert max(len(line) for line in lines) <= 998  # RFC 5322; quoted-printable keeps them within 76
        body = data.split(b"\r\n\r\n", 1)[1]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76
        part = _parse(data).get_body(("html",))
        assert part is not None and part["Content-Transfer-Encoding"] == "quoted-printable"
        sent = path.with_suffix(".html").read_text(encoding="utf-8")
        assert str(part.get_content()).replace("\r\n", "\n") == sent
    assert len(messages) == len(list(folder.glob("*.eml"))) == 4 + len(AT_CAPS)
