"""A past digest in the browser: the signed "view in browser" link atop every digest, its page (the
digest as sent, with the papers the cap cut), the archive on the manage page, and every link that
does not work answering the same 404.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email import policy
from email.message import EmailMessage

from sqlmodel import col, select

from digest import archive
from digest.db import open_session
from digest.models import Delivery, DeliveryStatus, Subscriber
from digest.pipeline import run_send
from digest.send import OutboxTransport
from digest.suppress import forget
from digest.tokens import Purpose, make_token
from tests.conftest import NOW
from tests.factories import add_papers, paper
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    ADA,
    Site,
    assert_security_headers,
    clock,
    page_text,
    site,
    tamper,
    token_of,
)

DAY = timedelta(days=1)
VIEW_LINK = re.compile(r'<a href="https://digest\.example\.org/view/([A-Za-z0-9_.\-]+)"[^>]*>View in your browser</a>')


def _papers(site: Site, day: int, count: int) -> list[str]:
    """`count` papers on agents first seen `day` days after NOW (minus five hours); their titles."""
    seen = NOW + day * DAY - timedelta(hours=5)
    titles = [f"Agents day {day} number {n}" for n in range(count)]
    rows = [
        paper(f"2611.{day:02d}{n:03d}", t, "On agents.", first_seen=seen, upvotes=50 - n) for n, t in enumerate(titles)
    ]
    with open_session(site.engine) as session:
        add_papers(session, *rows)
    return titles


def _reader(site: Site, cap: int = 25) -> Subscriber:
    sub = site.add_subscriber(ADA, ("agents",))
    with open_session(site.engine) as session:
        row = session.get(Subscriber, sub.id)
        assert row is not None
        row.max_papers = cap
        session.add(row)
        session.commit()
        session.refresh(row)
        return row


def _send(site: Site, day: int = 0) -> EmailMessage:
    """Run the send at 09:00 on that day; the newest email in the outbox."""
    before = set(site.settings.outbox_dir.glob("*.eml")) if site.settings.outbox_dir.exists() else set()
    with open_session(site.engine) as session:
        run_send(session, site.settings, OutboxTransport(site.settings.outbox_dir), NOW + day * DAY)
    [path] = set(site.settings.outbox_dir.glob("*.eml")) - before
    message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _html(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def _view_token(message: EmailMessage) -> str:
    found = VIEW_LINK.search(_html(message))
    assert found, "no view-in-browser link"
    return found.group(1)


def test_every_digest_has_its_view_in_browser_link_at_the_top(site: Site) -> None:
    _reader(site)
    _papers(site, 0, 2)
    html = _html(_send(site))
    link = VIEW_LINK.search(html)
    assert link is not None
    assert link.start() < html.index('class="date"') < html.index('class="card"')  # above everything but the preview


def test_the_text_part_has_the_view_in_browser_link_at_its_top(site: Site) -> None:
    _reader(site)
    _papers(site, 0, 2)
    message = _send(site)
    part = message.get_body(("plain",))
    assert part is not None
    lines = str(part.get_content()).splitlines()
    token = _view_token(message)
    assert f"View in your browser: https://digest.example.org/view/{token}" in lines[:3]


def test_the_page_shows_the_digest_as_sent_and_the_papers_the_cap_cut(site: Site) -> None:
    _reader(site, cap=2)
    titles = _papers(site, 0, 5)
    token = _view_token(_send(site))
    page = site.client.get(f"/view/{token}")
    assert page.status_code == 200
    text = page_text(page.text)
    assert "Monday 30 November 2026" in text and "Your topics: agents" in text
    sent, cut = titles[:2], titles[2:]
    assert [text.index(t) for t in sent] == sorted(text.index(t) for t in sent)
    assert "3 more papers matched" in text
    assert text.index(sent[-1]) < text.index("3 more papers matched") < min(text.index(t) for t in cut)
    assert text.count("Matched: agents") == 5
    assert ADA not in page.text  # a forwarded link shows the papers, never the address
    assert (
        "/manage/" not in page.text
        and "/unsubscribe/" not in page.text
        and "<script" not in page.text.split("</head>")[1]
    )
    assert_security_headers(page)
    assert page.headers["cache-control"] == "no-store"


def test_view_links_that_do_not_work_all_answer_the_same_404(site: Site) -> None:
    sub = _reader(site)
    _papers(site, 0, 1)
    token = _view_token(_send(site))
    assert site.client.get(f"/view/{token}").status_code == 200
    with open_session(site.engine) as session:
        [row] = session.exec(select(Delivery))
    keys = site.settings.signing_keys
    bad = {
        "tampered": tamper(token),
        "garbage": "not-a-token",
        "a manage token": make_token(keys, Purpose.MANAGE, sub.handle, now=NOW),
        "no such reader": make_token(keys, Purpose.VIEW, "nobody-at-all", row.id, now=NOW),
        "no such digest": make_token(keys, Purpose.VIEW, sub.handle, 4242, now=NOW),
    }
    answers = {why: site.client.get(f"/view/{t}") for why, t in bad.items()}
    with open_session(site.engine) as session:  # the archive's clean-up removed it
        archive.remove_old(session, NOW + 91 * DAY, timedelta(days=90))
    answers["removed"] = site.client.get(f"/view/{token}")
    assert {why: r.status_code for why, r in answers.items()} == dict.fromkeys(answers, 404)
    assert len({r.text for r in answers.values()}) == 1
    assert "Nothing here" in answers["tampered"].text


def test_a_forgotten_readers_view_link_answers_404_like_any_other(site: Site) -> None:
    sub = _reader(site)
    _papers(site, 0, 1)
    token = _view_token(_send(site))
    tampered = site.client.get(f"/view/{tamper(token)}").text
    with open_session(site.engine) as session:
        row = session.get(Subscriber, sub.id)
        assert row is not None
        forget(session, row, NOW)
    answer = site.client.get(f"/view/{token}")
    assert (answer.status_code, answer.text) == (404, tampered)


def test_view_links_are_rate_limited_like_every_token_link(site: Site) -> None:
    _reader(site)
    _papers(site, 0, 1)
    token = _view_token(_send(site))
    site.settings.link_rate_limit = 3
    site.limiter.counts.clear()  # type: ignore[attr-defined]
    codes = [site.client.get(f"/view/{t}").status_code for t in (token, token, "garbage", token)]
    assert codes == [200, 200, 404, 429]


def _manage(site: Site, query: str = "") -> str:
    page = site.client.get(f"/manage/{site.tokens(ADA)['manage']}{query}")
    assert page.status_code == 200
    return page.text


def _archive_links(page: str) -> list[tuple[str, str]]:
    found = re.search(r'<ol class="archive">(.*?)</ol>', page, re.S)
    return (
        re.findall(r'<a href="https://digest\.example\.org/view/([^"]+)">([^<]+)</a>', found.group(1)) if found else []
    )


def test_the_manage_page_lists_past_digests_newest_first_paged_each_opening_its_page(site: Site) -> None:
    _reader(site)
    for day in range(12):
        _papers(site, day, 1)
        _send(site, day)
    site.clock.advance(days=12)
    first, second = _archive_links(_manage(site)), _archive_links(_manage(site, "?page=2"))
    assert len(first) == 10 and len(second) == 2
    dates = [date for _token, date in first + second]
    assert dates[0] == "Friday 11 December 2026" and dates[-1] == "Monday 30 November 2026"
    assert 'rel="next"' in _manage(site) and 'rel="prev"' in _manage(site, "?page=2")
    for token, date in (first[0], second[-1]):
        page = site.client.get(f"/view/{token}")
        assert page.status_code == 200 and date in page_text(page.text)
    assert "No older digests" in _manage(site, "?page=3")
    assert _archive_links(_manage(site, "?page=nonsense")) == first


def test_the_manage_page_says_when_there_is_no_digest_yet(site: Site) -> None:
    _reader(site)
    page = _manage(site)
    assert "None yet" in page and "Kept for 90 days" in page_text(page)


def _feed_only(site: Site) -> bool:
    sub = site.subscriber(ADA)
    assert sub is not None
    return sub.feed_only


def test_feed_only_and_email_again_from_the_manage_page(site: Site) -> None:
    _reader(site)
    manage = site.tokens(ADA)["manage"]
    page = site.post(f"/manage/{manage}", {"action": "feed_only"})
    assert page.status_code == 200 and "Feed only:" in page_text(page.text) and 'value="email_again"' in page.text
    assert _feed_only(site) is True
    _papers(site, 0, 1)
    with open_session(site.engine) as session:
        run_send(session, site.settings, OutboxTransport(site.settings.outbox_dir), NOW)
        [row] = session.exec(select(Delivery).order_by(col(Delivery.id)))
    assert row.status is DeliveryStatus.FEED and not list(site.settings.outbox_dir.glob("*.eml"))
    [(token, _date)] = _archive_links(_manage(site))
    assert "feed only" in page_text(site.client.get(f"/view/{token}").text)
    page = site.post(f"/manage/{manage}", {"action": "email_again"})
    assert 'value="feed_only"' in page.text and _feed_only(site) is False


def test_a_feed_reset_from_the_manage_page_kills_older_view_links(site: Site) -> None:
    _reader(site)
    _papers(site, 0, 1)
    emailed = _view_token(_send(site))
    manage = site.tokens(ADA)["manage"]
    old_feed = re.findall(r'id="feed-url" readonly value="([^"]+)"', _manage(site))
    site.clock.advance(seconds=5)
    page = site.post(f"/manage/{manage}", {"action": "reset_feed"})
    assert page.status_code == 200 and "new address" in page.text
    new_feed = re.findall(r'id="feed-url" readonly value="([^"]+)"', page.text)
    assert old_feed and new_feed and old_feed != new_feed
    assert site.client.get(f"/view/{emailed}").status_code == 404
    [(fresh, _date)] = _archive_links(page.text)  # the list on the page after the reset links anew
    assert site.client.get(f"/view/{fresh}").status_code == 200
    assert token_of(old_feed[0]) != token_of(new_feed[0])
