"""Bytes on the wire per digest (issue 15): `python -m bench.size`.

Sends the bundled samples through the real pipeline to an outbox, for the demo's four readers plus
three at the caps (25 papers, the default cap; the same with the default 10 trending papers; 100
papers and 50 trending, the most a reader may ask for, which the 83 sample papers cannot fill), and
prints each message's size as sent and as it would be with its HTML part in base64 or
quoted-printable instead, and the decoded HTML's. Gmail clips over 102 KB (102 x 1024 bytes here)."""

from __future__ import annotations

import email
import tempfile
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import NamedTuple

from digest.clock import utcnow
from digest.config import Settings, SourceKind
from digest.db import init_db, make_engine, open_session
from digest.demo import SAMPLES, SEND_HOUR, demo_day, demo_readers
from digest.ingest import ingest_bytes
from digest.mime import base64_lines, quoted_printable
from digest.models import DEFAULT_PREFERENCES, TRENDING_DEFAULT, TRENDING_MAX, Preferences
from digest.pipeline import run_send
from digest.send import OutboxTransport
from digest.subscribers import MAX_CAP, subscribe_active

GMAIL_CLIP = 102 * 1024
# Three everyday topics that together match more papers than the caps let through.
BROAD = ['"long context" OR "context window"', "reasoning OR retrieval", "agent OR agents OR benchmark"]
AT_CAPS = [
    ("cap@example.org", Preferences(BROAD, max_papers=DEFAULT_PREFERENCES.max_papers)),
    (
        "cap-trending@example.org",
        Preferences(BROAD, max_papers=DEFAULT_PREFERENCES.max_papers, trending=TRENDING_DEFAULT),
    ),
    ("max-cap@example.org", Preferences(BROAD, max_papers=MAX_CAP, trending=TRENDING_MAX)),
]


def send_samples(folder: Path) -> dict[str, bytes]:
    """Every reader's message as the outbox got it, by address."""
    engine = make_engine(f"sqlite:///{folder / 'size.sqlite3'}")
    init_db(engine)
    today = demo_day(utcnow())
    settings = Settings(_env_file=None, outbox_dir=folder / "outbox", secret_key="size", embedding_model="none")
    readers = [*demo_readers(today), *AT_CAPS]
    with open_session(engine) as session:
        at = today + timedelta(hours=6)
        ingest_bytes(session, (SAMPLES / "arxiv-listing.rss").read_bytes(), SourceKind.ARXIV_RSS, "arxiv", at)
        ingest_bytes(session, (SAMPLES / "hf-daily-papers.json").read_bytes(), SourceKind.HF_JSON, "hf", at)
        for address, prefs in readers:
            subscribe_active(session, address, prefs, today - timedelta(days=7))
        run_send(session, settings, OutboxTransport(settings.outbox_dir), today + timedelta(hours=SEND_HOUR))
    engine.dispose()
    sent = [path.read_bytes() for path in sorted(settings.outbox_dir.glob("*.eml"))]
    return {_recipient(data): data for data in sent}


def _recipient(data: bytes) -> str:
    return str(email.message_from_bytes(data, policy=policy.default)["To"])


def _html_part(data: bytes) -> tuple[str, str, int]:
    """The HTML body, its transfer encoding and its encoded length in the message."""
    msg = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content()), str(part["Content-Transfer-Encoding"]), len(str(part.get_payload()))


class Size(NamedTuple):
    """One message's bytes: as sent, and with its HTML part in each encoding."""

    reader: str
    cards: int
    sent: int
    base64: int  # the whole message, its HTML part in base64
    qp: int  # the whole message, its HTML part quoted-printable
    html: int  # the HTML itself, decoded
    html_qp: int  # the HTML part alone, quoted-printable
    encoding: str  # the HTML part's as sent


def measure(reader: str, data: bytes) -> Size:
    """The sizes of one message."""
    html, encoding, encoded = _html_part(data)
    rest, qp = len(data) - encoded, len(quoted_printable(html))
    b64 = rest + len(base64_lines(html))
    return Size(reader, html.count('class="card"'), len(data), b64, rest + qp, len(html.encode()), qp, encoding)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        messages = send_samples(Path(tmp))
    rows = sorted((measure(a, d) for a, d in messages.items()), key=lambda r: r.sent)
    print(f"{'reader':<26}{'cards':>6}{'as sent':>10}{'base64':>10}{'QP':>10}{'HTML':>10}{'HTML QP':>10}  sent as")
    for r in rows:
        sizes = "".join(f"{n:>10,}" for n in (r.sent, r.base64, r.qp, r.html, r.html_qp))
        print(f"{r.reader:<26}{r.cards:>6}{sizes}  {r.encoding}")
    demo = {address for address, _prefs in demo_readers(utcnow())}
    groups = {
        "average (demo readers)": [r for r in rows if r.reader in demo],
        "at the cap (25)": [r for r in rows if r.reader == AT_CAPS[0][0]],
        "largest": rows[-1:],
    }
    for name, group in groups.items():
        mean = [sum(getattr(r, f) for r in group) / len(group) for f in ("sent", "base64", "qp", "html", "html_qp")]
        print(f"{name:<32}" + "".join(f"{m:>10,.0f}" for m in mean))
    print(f"Gmail clips over {GMAIL_CLIP:,} bytes")


if __name__ == "__main__":
    main()
