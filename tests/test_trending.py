"""Trending digests and popularity that keeps counting, end to end: Hugging Face days served on
loopback and fetched for real, digests sent over SMTP to a real server on loopback."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlmodel import Session, select

from digest.config import Settings, SourceConfig, SourceKind
from digest.models import Delivery, DeliveryStatus, Frequency
from digest.pipeline import run_fetch, run_send
from digest.send import make_transport
from tests.conftest import NOW
from tests.factories import add_papers, paper, subscriber
from tests.httpserver import HTTPTestServer, http_server_fixture  # noqa: F401  (the fixture)
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401  (the fixture)

DAY = timedelta(days=1)
JOINED = NOW - 30 * DAY
# NOW is 30 Nov 09:00 UTC; readers get their digest at 08:00 UTC.
DAY1 = NOW.replace(hour=8, minute=30)
ARXIV_ATOM_EMPTY = b'<feed xmlns="http://www.w3.org/2005/Atom"><title>arXiv Query</title></feed>'


def _hf_day(papers: Sequence[tuple[str, str, int]]) -> bytes:
    """A Hugging Face daily-papers answer: (arXiv id, title, upvotes) per paper."""
    items = [
        {
            "paper": {
                "id": pid,
                "title": title,
                "summary": f"{title}. We study agents that plan.",
                "authors": [{"name": "Ada Lovelace"}, {"name": "Alan Turing"}],
                "publishedAt": "2026-11-29T17:00:00.000Z",
                "upvotes": upvotes,
            },
            "title": title,
        }
        for pid, title, upvotes in papers
    ]
    return json.dumps(items).encode()


def _hf_settings(settings: Settings, http: HTTPTestServer, smtp: SmtpServer) -> Settings:
    http.route("/api/query", ARXIV_ATOM_EMPTY, headers={"Content-Type": "application/atom+xml"})
    source = SourceConfig(name="hf", kind=SourceKind.HF_JSON, url=http.url("/api/daily_papers"))
    return settings.model_copy(
        update={
            "sources": [source],
            "arxiv_api_url": http.url("/api/query"),
            "smtp_url": smtp.url,
            "smtp_timeout": 5.0,
        }
    )


def _fetch(session: Session, settings: Settings, http: HTTPTestServer, day: bytes, at: datetime) -> None:
    http.route("/api/daily_papers", day, headers={"Content-Type": "application/json"})
    (report,) = [r for r in run_fetch(session, settings, at) if r.name == "hf"]
    assert report.ok, report.error


def _send(session: Session, settings: Settings, smtp: SmtpServer, at: datetime) -> list[EmailMessage]:
    before = len(smtp.messages)
    run_send(session, settings, make_transport(settings), at)
    return [m.message for m in smtp.messages[before:]]


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _html(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _titles(text: str) -> list[str]:
    """The paper titles of a digest's text part, in order (each card starts with 'N. Title')."""
    return re.findall(r"^\d+\. (.+)$", text, re.M)


def test_a_paper_that_climbs_past_the_minimum_is_sent_once_in_the_next_digest(
    session: Session, settings: Settings, http_server: HTTPTestServer, smtp_server: SmtpServer
) -> None:
    settings = _hf_settings(settings, http_server, smtp_server)
    subscriber(session, "picky@example.org", ["agents"], joined=JOINED, min_upvotes=50)
    climbing = ("2611.30001", "Climbing agents", 5)
    steady = ("2611.30002", "Steady agents", 60)
    # Day 1, 07:00: the climbing paper has 5 upvotes, the steady one 60.
    _fetch(session, settings, http_server, _hf_day([climbing, steady]), DAY1 - timedelta(hours=1, minutes=30))
    (first,) = _send(session, settings, smtp_server, DAY1)
    assert _titles(_text(first)) == ["Steady agents"]

    # During day 1 it climbs: 30 at noon (still under), 120 in the evening (over: eligible from then on).
    _fetch(session, settings, http_server, _hf_day([(*climbing[:2], 30), steady]), DAY1 + timedelta(hours=4))
    assert _send(session, settings, smtp_server, DAY1 + timedelta(hours=5)) == []  # not due again today
    _fetch(session, settings, http_server, _hf_day([(*climbing[:2], 120), steady]), DAY1 + timedelta(hours=12))
    (second,) = _send(session, settings, smtp_server, DAY1 + DAY)
    text = _text(second)
    assert _titles(text) == ["Climbing agents"] and "▲ 120" in text

    # It keeps climbing, the steady one too: neither is ever sent again.
    _fetch(session, settings, http_server, _hf_day([(*climbing[:2], 300), (*steady[:2], 90)]), DAY1 + DAY + DAY / 2)
    assert _send(session, settings, smtp_server, DAY1 + 2 * DAY) == []
    rows = list(session.exec(select(Delivery).order_by(Delivery.id)))  # type: ignore[arg-type]
    assert [(r.paper_ids, r.status) for r in rows] == [
        (["2611.30002"], DeliveryStatus.SENT),
        (["2611.30001"], DeliveryStatus.SENT),
        ([], DeliveryStatus.EMPTY),
    ]


def test_a_trending_reader_gets_exactly_the_top_n_by_upvotes(
    session: Session, settings: Settings, http_server: HTTPTestServer, smtp_server: SmtpServer
) -> None:
    settings = _hf_settings(settings, http_server, smtp_server)
    day = [(f"2611.4{n:04d}", f"Paper number {n}", votes) for n, votes in enumerate([7, 300, 12, 55, 0, 41, 90, 3])]
    _fetch(session, settings, http_server, _hf_day(day), DAY1 - timedelta(hours=2))
    seen = DAY1 - timedelta(hours=2)
    add_papers(session, paper("2611.49999", "An arXiv-only paper about agents", first_seen=seen))  # not on HF
    subscriber(session, "hot@example.org", [], joined=JOINED, trending=5)

    (msg,) = _send(session, settings, smtp_server, DAY1)
    text = _text(msg)
    assert msg["Subject"] == "5 trending papers today — 30 Nov"
    assert _titles(text) == ["Paper number 1", "Paper number 6", "Paper number 3", "Paper number 5", "Paper number 2"]
    assert "#1 today · 300 upvotes" in text and "#5 today · 12 upvotes" in text
    assert "Your topics" not in text and "ON YOUR TOPICS" not in text
    html = _html(msg)
    assert "Trending: the 5 most upvoted papers on Hugging Face today" in html
    assert 'href="https://huggingface.co/papers/2611.40001"' in html  # each card links its HF page
    assert "An arXiv-only paper" not in html

    # The next morning nothing new arrived: yesterday's top five are never sent again; the rest may be.
    (again,) = _send(session, settings, smtp_server, DAY1 + DAY)
    assert _titles(_text(again)) == ["Paper number 0", "Paper number 7", "Paper number 4"]


def test_a_two_section_digest_never_holds_a_paper_twice(
    session: Session, settings: Settings, http_server: HTTPTestServer, smtp_server: SmtpServer
) -> None:
    settings = _hf_settings(settings, http_server, smtp_server)
    day = [("2611.50001", "Hot agents", 200), ("2611.50002", "Cold agents", 4), ("2611.50003", "Hot proteins", 150)]
    _fetch(session, settings, http_server, _hf_day(day), DAY1 - timedelta(hours=2))
    add_papers(session, paper("2611.50004", "Agents on arXiv", first_seen=DAY1 - timedelta(hours=2)))
    subscriber(session, "both@example.org", ["agents"], joined=JOINED, trending=2)

    (msg,) = _send(session, settings, smtp_server, DAY1)
    text = _text(msg)
    titles = _titles(text)
    assert titles == ["Hot agents", "Hot proteins", "Cold agents", "Agents on arXiv"]
    assert len(set(titles)) == len(titles)
    assert text.index("TRENDING") < text.index("Hot agents") < text.index("ON YOUR TOPICS") < text.index("Cold agents")
    assert "#1 today · 200 upvotes · also on your topic agents" in text
    assert msg["Subject"] == "2 new papers on agents + 2 trending — 30 Nov"
    html = _html(msg)
    assert (
        html.count("huggingface.co/papers/2611.50001") == 1
        and ">Trending</h2>" in html
        and ">On your topics</h2>" in html
    )


def test_a_weekly_trending_digest_says_this_week(
    session: Session, settings: Settings, http_server: HTTPTestServer, smtp_server: SmtpServer
) -> None:
    settings = _hf_settings(settings, http_server, smtp_server)
    _fetch(session, settings, http_server, _hf_day([("2611.60001", "Weekly star", 80)]), DAY1 - 2 * DAY)
    subscriber(session, "week@example.org", [], joined=JOINED, trending=3, frequency=Frequency.WEEKLY)
    (msg,) = _send(session, settings, smtp_server, DAY1)  # 30 Nov 2026 is a Monday: their day
    assert msg["Subject"] == "1 trending paper this week — 30 Nov"
    assert "#1 this week · 80 upvotes" in _text(msg)
