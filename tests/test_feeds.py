"""The Atom feeds (RFC 4287): a reader's personal feed at its secret address and the public trending
feed — parsed by feedparser with no bozo flag, holding every element the RFC requires, answered 304
to a repeated conditional GET — and every feed link that does not work answering the same 404.

Each test gets its own database, a clock it controls and an in-memory rate limiter (tests/webclient.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from typing import Any

import feedparser
import pytest

from digest import archive
from digest.db import open_session
from digest.feeds import ATOM
from digest.logs import redact_tokens
from digest.models import Subscriber
from digest.pipeline import run_send
from digest.send import OutboxTransport
from digest.subscribers import unsubscribe
from digest.suppress import forget
from digest.tokens import Purpose, make_token
from tests.conftest import NOW
from tests.factories import add_papers, paper
from tests.webclient import (  # noqa: F401  (clock, site, trending_papers: fixtures)
    ADA,
    Site,
    assert_security_headers,
    clock,
    site,
    tamper,
    token_of,
    trending_papers,
)

DAY = timedelta(days=1)
A = f"{{{ATOM}}}"
MANY = [f"Author Number{n}" for n in range(30)]


def _reader(site: Site, topics: tuple[str, ...] = ("agents", '"tool use"')) -> Subscriber:
    return site.add_subscriber(ADA, topics)


def _papers(site: Site, day: int = 0) -> None:
    seen = NOW + day * DAY - timedelta(hours=5)
    with open_session(site.engine) as session:
        add_papers(
            session,
            paper(f"2611.{day:02d}001", "Agents & <tools>", "Agents with tool use, at scale.", first_seen=seen,
                  authors=MANY, upvotes=12, on_hf=True),
            paper(f"2611.{day:02d}002", "Planning agents", "We plan.", first_seen=seen),
            paper(f"2611.{day:02d}003", "Protein folding", "Biology.", first_seen=seen),
        )  # fmt: skip


def _id(site: Site) -> int | None:
    sub = site.subscriber(ADA)
    assert sub is not None
    return sub.id


def _send(site: Site, day: int = 0) -> None:
    with open_session(site.engine) as session:
        run_send(session, site.settings, OutboxTransport(site.settings.outbox_dir), NOW + day * DAY)


def _feed_path(site: Site) -> str:
    page = site.client.get(f"/manage/{site.tokens(ADA)['manage']}").text
    [url] = re.findall(r'id="feed-url" readonly value="([^"]+)"', page)
    assert url.startswith("https://digest.example.org/feed/")
    return "/feed/" + token_of(url)


def _parsed(body: bytes) -> Any:
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.get("bozo_exception")
    return parsed


def _assert_rfc4287(body: bytes) -> ET.Element:
    """The elements RFC 4287 requires (4.1.1, 4.1.2): exactly one id, title and updated in the feed
    and in each entry; an author for the feed (so for every entry); a self link; each entry an
    alternate link (it has no out-of-line content) and, since it has content, no need of more."""
    root = ET.fromstring(body)
    assert root.tag == f"{A}feed"
    for tag in ("id", "title", "updated"):
        assert len(root.findall(f"{A}{tag}")) == 1, tag
    assert [a.findtext(f"{A}name") for a in root.findall(f"{A}author")] == ["Paper Digest"]
    assert [link.get("href") for link in root.findall(f"{A}link") if link.get("rel") == "self"]
    for entry in root.findall(f"{A}entry"):
        for tag in ("id", "title", "updated", "summary", "content"):
            assert len(entry.findall(f"{A}{tag}")) == 1, tag
        assert [link for link in entry.findall(f"{A}link") if link.get("rel") == "alternate"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry.findtext(f"{A}updated") or "")
    return root


def test_the_personal_feed_has_one_entry_per_paper_sent_with_everything_rfc_4287_requires(site: Site) -> None:
    _reader(site)
    _papers(site)
    _send(site)
    answer = site.client.get(_feed_path(site))
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/atom+xml; charset=utf-8"
    _assert_rfc4287(answer.content)
    feed = _parsed(answer.content)
    assert feed.feed.title == "Paper Digest: your papers" and feed.feed.id.startswith("urn:uuid:")
    assert [e.title for e in feed.entries] == ["Agents & <tools>", "Planning agents"]
    first, second = feed.entries
    assert first.link == "https://arxiv.org/abs/2611.00001" and first.id.startswith("urn:uuid:")
    assert [a.name for a in first.authors] == [*MANY[:25], "and 5 others"]
    assert first.summary == "Agents with tool use, at scale."
    assert [t.term for t in first.tags] == ["agents", "tool use"] and [t.term for t in second.tags] == ["agents"]
    assert "Matched: agents, tool use" in first.content[0].value and "PDF" in first.content[0].value
    assert first.updated == "2026-11-30T09:00:00Z"
    assert_security_headers(answer)
    assert answer.headers["cache-control"] == "no-store"


def test_a_repeated_conditional_get_is_answered_304(site: Site) -> None:
    _reader(site)
    _papers(site)
    _send(site)
    path = _feed_path(site)
    first = site.client.get(path)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    assert modified == "Mon, 30 Nov 2026 09:00:00 GMT"
    for headers in ({"If-None-Match": etag}, {"If-Modified-Since": modified}, {"If-None-Match": f'W/{etag}, "x"'}):
        again = site.client.get(path, headers=headers)
        assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", etag), headers
    assert site.client.get(path, headers={"If-None-Match": '"other"'}).status_code == 200
    assert site.client.get(path, headers={"If-Modified-Since": "Sun, 29 Nov 2026 09:00:00 GMT"}).status_code == 200
    assert site.client.get(path, headers={"If-Modified-Since": "yesterday"}).status_code == 200
    _papers(site, 1)
    _send(site, 1)  # a new digest: a new feed
    newer = site.client.get(path, headers={"If-None-Match": etag})
    assert newer.status_code == 200 and newer.headers["etag"] != etag and len(_parsed(newer.content).entries) == 4


def test_an_empty_feed_is_still_a_valid_feed(site: Site) -> None:
    _reader(site)
    answer = site.client.get(_feed_path(site))
    assert answer.status_code == 200 and _parsed(answer.content).entries == []
    _assert_rfc4287(answer.content)


def test_feed_links_that_do_not_work_all_answer_the_same_404(site: Site) -> None:
    sub = _reader(site)
    path = _feed_path(site)
    keys = site.settings.signing_keys
    bad = {
        "tampered": "/feed/" + tamper(token_of(path)),
        "garbage": "/feed/nonsense",
        "a manage token": "/feed/" + site.tokens(ADA)["manage"],
        "an unknown reader": "/feed/" + make_token(keys, Purpose.FEED, "nobody-at-all", 0, now=NOW),
        "another reset's stamp": "/feed/" + make_token(keys, Purpose.FEED, sub.handle, 12345, now=NOW),
    }
    answers = {why: site.client.get(p) for why, p in bad.items()}
    site.post(f"/manage/{site.tokens(ADA)['manage']}", {"action": "reset_feed"})
    answers["reset"] = site.client.get(path)
    assert site.client.get(_feed_path(site)).status_code == 200  # the new address works
    assert {why: r.status_code for why, r in answers.items()} == dict.fromkeys(answers, 404)
    assert len({r.content for r in answers.values()}) == 1


@pytest.mark.parametrize("gone", ["unsubscribed", "forgotten"])
def test_a_readers_feed_stops_when_they_leave(site: Site, gone: str) -> None:
    _reader(site)
    path = _feed_path(site)
    stranger = site.client.get("/feed/" + tamper(token_of(path)))
    with open_session(site.engine) as session:
        sub = session.get(Subscriber, _id(site))
        assert sub is not None
        if gone == "unsubscribed":
            unsubscribe(session, sub, NOW)
        else:
            forget(session, sub, NOW)
    answer = site.client.get(path)
    assert (answer.status_code, answer.content) == (404, stranger.content)


def test_feed_requests_are_rate_limited_per_visitor(site: Site) -> None:
    _reader(site)
    path = _feed_path(site)
    site.settings.feed_rate_limit = 2
    site.limiter.counts.clear()  # type: ignore[attr-defined]
    assert [site.client.get(p).status_code for p in (path, "/feed/nonsense", path)] == [200, 404, 429]


def test_feed_and_view_tokens_never_reach_the_logs() -> None:
    line = "GET /feed/eyJoIjoi.abc_DEF-1 HTTP/1.1 200; GET /view/eyJoIjoi.Zm9v?x=1 404; GET /trending.atom 304"
    assert redact_tokens(line) == "GET /feed/[token] HTTP/1.1 200; GET /view/[token]?x=1 404; GET /trending.atom 304"


# --- trending, for everyone -----------------------------------------------------------------------------

# By upvotes, the Hugging Face papers first seen in the last two days (tests/webclient.py).
TRENDING_TODAY = [
    "Diffusion transformers at scale",
    "Agents that use tools",
    "A survey of graphs",
    "Small diffusion tricks",
]


@pytest.mark.usefixtures("trending_papers")
def test_the_trending_page_shows_the_days_top_papers_by_upvotes_to_anyone(site: Site) -> None:
    page = site.new_client().get("/trending")
    assert page.status_code == 200
    titles = re.findall(r'<h3 class="title"><a href="[^"]+">([^<]+)</a></h3>', page.text)
    assert titles == TRENDING_TODAY
    assert "#1 today · 120 upvotes" in page.text and "#4 today · 4 upvotes" in page.text
    assert '<link rel="alternate" type="application/atom+xml"' in page.text
    assert_security_headers(page)


@pytest.mark.usefixtures("trending_papers")
def test_the_trending_feed_is_the_same_papers_and_answers_304(site: Site) -> None:
    answer = site.new_client().get("/trending.atom")
    assert answer.status_code == 200 and answer.headers["cache-control"] == "public, max-age=300"
    _assert_rfc4287(answer.content)
    feed = _parsed(answer.content)
    assert [e.title for e in feed.entries] == TRENDING_TODAY
    assert feed.entries[0].tags[0].term == "Trending" and "#1 today · 120 upvotes" in feed.entries[0].content[0].value
    assert feed.feed.links[0].href == "https://digest.example.org/trending.atom"
    again = site.new_client().get("/trending.atom", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304


def test_the_trending_page_and_feed_without_papers(site: Site) -> None:
    assert "No paper of the last two days" in site.client.get("/trending").text
    _assert_rfc4287(site.client.get("/trending.atom").content)


def test_a_feed_reset_changes_the_address_shown_and_keeps_the_entries(site: Site) -> None:
    _reader(site)
    _papers(site)
    _send(site)
    before = site.client.get(_feed_path(site))
    site.post(f"/manage/{site.tokens(ADA)['manage']}", {"action": "reset_feed"})
    after = site.client.get(_feed_path(site))
    assert _parsed(after.content).entries == _parsed(before.content).entries
    assert _parsed(after.content).feed.id == _parsed(before.content).feed.id  # the same feed, at a new address
    with open_session(site.engine) as session:
        sub = session.get(Subscriber, _id(site))
        assert sub is not None and archive.feed_stamp(sub) > 0


def test_latex_in_a_paper_reads_as_text_in_the_feed(site: Site) -> None:
    _reader(site, ("agents",))
    with open_session(site.engine) as session:
        add_papers(session, paper("2611.00009", r"$\infty$Bench: agents", r"We use \textit{agents} in $O(n^2)$ time.",
                                  first_seen=NOW - timedelta(hours=5), authors=[r"Jos\'e Garc\'ia"]))  # fmt: skip
    _send(site)
    [entry] = _parsed(site.client.get(_feed_path(site)).content).entries
    assert (entry.title, entry.summary, entry.authors[0].name) == (
        "∞Bench: agents",
        "We use agents in O(n²) time.",
        "José García",
    )
    assert "$" not in entry.content[0].value and "\\" not in entry.content[0].value
