"""Atom feeds (RFC 4287): a reader's personal feed of what they were sent, one entry per paper, and
the public feed of the day's trending papers. Building the entries reads the archive or an index;
writing the XML is pure (ElementTree escapes every text), and the same entries give the same bytes,
so a feed's ETag changes only when what it says does.
"""

from __future__ import annotations

import re
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from markupsafe import escape
from sqlmodel import Session, col, select

from digest.archive import ARCHIVED, Shown, as_sent, paper_index, shown, topics_of
from digest.config import Settings
from digest.latex import latex_to_text
from digest.match import Match, PaperIndex, pick
from digest.models import TRENDING_DEFAULT, Delivery, Preferences, Subscriber
from digest.schedule import Period
from digest.semantic import Semantics

ATOM = "http://www.w3.org/2005/Atom"
ET.register_namespace("", ATOM)
FEED_ENTRIES = 100  # the personal feed's newest papers
FEED_ROWS = 60  # digests read to find them (a digest may hold few papers)
AUTHORS_MAX = 25  # atom:author elements per entry; a longer list ends with "and N others"
TRENDING_DAY = timedelta(days=1)
# Characters XML 1.0 cannot carry at all (ElementTree escapes markup, not these).
_NOT_XML = re.compile("[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class Entry:
    """One paper in a feed."""

    id: str
    title: str
    link: str
    updated: datetime
    authors: list[str]
    summary: str  # the abstract's snippet, as the email shows it
    categories: list[str]  # the topics it matched (or why else it is there)
    content: str  # HTML: the snippet, why it is there, its links


@dataclass(frozen=True)
class Feed:
    """A whole feed: what it is, where it lives, and its entries, newest first."""

    id: str
    title: str
    subtitle: str
    self_url: str
    alternate: str
    updated: datetime
    author: str
    entries: list[Entry]


def urn(name: str) -> str:
    """A permanent, opaque atom:id for a name (a UUID made from it)."""
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}"


def stamp(moment: datetime) -> str:
    """An RFC 3339 date-time in UTC, to the second."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _text(parent: ET.Element, tag: str, text: str, **attributes: str) -> ET.Element:
    node = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    node.text = _NOT_XML.sub("", text)
    return node


def _link(parent: ET.Element, href: str, rel: str, kind: str | None = None) -> None:
    attributes = {"rel": rel, "href": href} | ({"type": kind} if kind else {})
    ET.SubElement(parent, f"{{{ATOM}}}link", attributes)


def _entry(parent: ET.Element, entry: Entry) -> None:
    node = ET.SubElement(parent, f"{{{ATOM}}}entry")
    _text(node, "id", entry.id)
    _text(node, "title", entry.title, type="text")
    _text(node, "updated", stamp(entry.updated))
    for name in entry.authors:
        _text(ET.SubElement(node, f"{{{ATOM}}}author"), "name", name)
    if entry.link:
        _link(node, entry.link, "alternate", "text/html")
    for term in entry.categories:
        ET.SubElement(node, f"{{{ATOM}}}category", {"term": _NOT_XML.sub("", term)})
    _text(node, "summary", entry.summary, type="text")
    _text(node, "content", entry.content, type="html")


def atom(feed: Feed) -> bytes:
    """The feed as an Atom document (UTF-8, with every element RFC 4287 requires)."""
    root = ET.Element(f"{{{ATOM}}}feed")
    _text(root, "id", feed.id)
    _text(root, "title", feed.title, type="text")
    _text(root, "subtitle", feed.subtitle, type="text")
    _text(root, "updated", stamp(feed.updated))
    _text(ET.SubElement(root, f"{{{ATOM}}}author"), "name", feed.author)
    _link(root, feed.self_url, "self", "application/atom+xml")
    _link(root, feed.alternate, "alternate", "text/html")
    _text(root, "generator", "Paper Digest")
    for entry in feed.entries:
        _entry(root, entry)
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document + b"\n"


# --- entries -----------------------------------------------------------------------------------------


def authors_of(names: Sequence[str]) -> list[str]:
    """Every author (LaTeX in a name read as text), or the first AUTHORS_MAX and 'and N others'."""
    shown = [latex_to_text(name) for name in names[:AUTHORS_MAX]]
    return shown if len(names) <= AUTHORS_MAX else [*shown, f"and {len(names) - AUTHORS_MAX} others"]


def categories_of(item: Shown) -> list[str]:
    """The entry's categories: the topics it matched, and its section when it is not on a topic."""
    extra = ["Trending"] if item.match.rank is not None else []
    extra += ["Recommended for you"] if item.match.recommended else []
    return [*extra, *item.view.topics]


def content_of(item: Shown) -> str:
    """The entry's HTML: authors, snippet, why it is there, and its links (every text escaped)."""
    view = item.view
    links = [(view.url, "abstract"), (view.pdf_url, "PDF"), (view.hf_url, "Hugging Face")]
    anchors = " · ".join(f'<a href="{escape(url)}">{label}</a>' for url, label in links if url)
    parts = [escape(view.authors), escape(view.snippet_text), escape(item.why), escape(view.meta)]
    return "".join(f"<p>{part}</p>" for part in parts if part) + (f"<p>{anchors}</p>" if anchors else "")


def entry_of(item: Shown, entry_id: str, when: datetime) -> Entry:
    """One paper as a feed entry."""
    view = item.view
    authors = authors_of(item.match.paper.authors)
    return Entry(
        entry_id, view.title_text, view.url, when, authors, view.snippet_text, categories_of(item), content_of(item)
    )


# --- the personal feed -------------------------------------------------------------------------------


def personal_rows(session: Session, sub: Subscriber) -> list[Delivery]:
    """The reader's newest archived digests, enough for FEED_ENTRIES papers."""
    query = (
        select(Delivery)
        .where(Delivery.subscriber_id == sub.id, col(Delivery.status).in_(ARCHIVED))
        .order_by(col(Delivery.created_at).desc(), col(Delivery.id).desc())
        .limit(FEED_ROWS)
    )
    rows, count = [], 0
    for row in session.exec(query):
        if count >= FEED_ENTRIES:
            break
        rows.append(row)
        count += len(row.paper_ids)
    return rows


def personal_entries(session: Session, sub: Subscriber, semantics: Semantics | None) -> list[Entry]:
    """One entry per paper the reader was sent (feed only: recorded for them), newest digest first."""
    rows = personal_rows(session, sub)
    index = paper_index(session, sorted({pid for row in rows for pid in row.paper_ids}), semantics)
    entries: list[Entry] = []
    for row in rows:
        word = "this week" if Period(row.period).weekly else "today"
        when = row.sent_at or row.created_at
        for match in as_sent(index, row, topics_of(row, sub)):
            entries.append(entry_of(shown(match, word), urn(f"{sub.handle}/{match.paper.id}"), when))
    return entries[:FEED_ENTRIES]


def personal_feed(settings: Settings, sub: Subscriber, entries: list[Entry], self_url: str) -> Feed:
    """The reader's feed: updated when its newest entry was sent (when they joined, while empty)."""
    updated = max((e.updated for e in entries), default=sub.confirmed_at or sub.created_at)
    return Feed(
        id=urn(f"{settings.base_url}/feed/{sub.handle}"),
        title=f"{settings.list_name}: your papers",
        subtitle="Every paper of your digests, newest first, with the topics it matched.",
        self_url=self_url, alternate=f"{settings.base_url}/", updated=updated,
        author=settings.list_name, entries=entries,
    )  # fmt: skip


# --- the public trending feed ------------------------------------------------------------------------


def trending_papers(
    index: PaperIndex, now: datetime, lookback: timedelta, count: int = TRENDING_DEFAULT
) -> list[Match]:
    """The day's top papers on Hugging Face by upvotes: the trending section of a daily digest
    composed now (first seen in the last day, or the day before), as `match.pick` chooses it."""
    prefs = Preferences(trending=count)
    return pick(index, prefs, now - TRENDING_DAY, now, lookback=lookback).trending


def last_change(match: Match) -> datetime:
    """When a paper's standing last changed: its latest rise in upvotes, or when it was first seen."""
    rises = [int(at) for _count, at in match.paper.upvote_history]
    seen = match.paper.first_seen
    return max(seen, datetime.fromtimestamp(max(rises), UTC)) if rises else seen


def trending_feed(settings: Settings, papers: Sequence[Match], now: datetime) -> Feed:
    """The public feed of the day's trending papers (updated with the latest rise among them)."""
    base = settings.base_url
    entries = [
        entry_of(shown(match, "today"), urn(f"{base}/trending/{match.paper.id}"), last_change(match))
        for match in papers
    ]
    empty = now.replace(minute=0, second=0, microsecond=0)
    return Feed(
        id=urn(f"{base}/trending"), title=f"{settings.list_name}: trending papers",
        subtitle="The day's most upvoted papers on Hugging Face Daily Papers.",
        self_url=f"{base}/trending.atom", alternate=f"{base}/trending",
        updated=max((e.updated for e in entries), default=empty), author=settings.list_name, entries=entries,
    )  # fmt: skip
