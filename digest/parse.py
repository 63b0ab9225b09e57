"""Parsing: bytes of a feed in, papers out. Pure functions, no network, no database."""

from __future__ import annotations

import calendar
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import feedparser

from digest.config import SourceKind
from digest.text import clip, html_to_text, plain_text, squash

MAX_TITLE = 500
MAX_ABSTRACT = 10_000
MAX_AUTHORS = 1_000
MAX_AUTHOR_NAME = 200
MAX_CATEGORIES = 20
MAX_ID = 500
MAX_COUNT = 1_000_000_000

_NEW_ID = r"\d{4}\.\d{4,5}"
_OLD_ID = r"[a-z][a-z\-]*(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_ID = re.compile(rf"(?:arxiv\.org/(?:abs|pdf)/|arXiv:|oai:arXiv\.org:|^)({_NEW_ID}|{_OLD_ID})(v\d+)?", re.I)
_ARXIV_CATEGORY = re.compile(r"^[a-z][a-z\-]*(?:\.[A-Za-z\-]{2,})?$")
_RSS_PREFIX = re.compile(r"^arXiv:\S+\s+Announce Type:\s*\S+\s*(?:Abstract:\s*)?", re.I)
KEEP_ANNOUNCE = frozenset({"new", "cross"})


@dataclass
class ParsedPaper:
    """A paper as one source describes it, already cleaned to plain text."""

    id: str
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]
    published: datetime | None
    abs_url: str
    pdf_url: str | None
    upvotes: int | None = None
    on_hf: bool = False  # Hugging Face Daily Papers described it (only its parser sets this)
    # False for generic feeds: a blog post about a paper must not become the paper's metadata.
    authoritative: bool = True


@dataclass
class ParseResult:
    """What a feed yielded: papers, entries skipped (with why), and any well-formedness warning."""

    papers: list[ParsedPaper] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    warning: str | None = None
    entries: int = 0
    # What the server said went wrong, in entries of their own (the arXiv API answers a bad query so).
    errors: list[str] = field(default_factory=list)
    ids: set[str] = field(default_factory=set, repr=False)


class FeedError(ValueError):
    """The bytes are not a feed of the expected kind at all."""


def arxiv_id(text: str) -> str | None:
    """The arXiv id without version found in an id, URL or `arXiv:` reference, if any."""
    match = _ARXIV_ID.search(text.strip())
    return match.group(1) if match else None


def arxiv_urls(paper_id: str) -> tuple[str, str]:
    """The canonical abs and PDF URLs of an arXiv id."""
    return f"https://arxiv.org/abs/{paper_id}", f"https://arxiv.org/pdf/{paper_id}"


def _struct_to_dt(value: time.struct_time | None) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError):
        return None


def _iso_to_dt(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _clean_authors(names: Iterable[str]) -> list[str]:
    cleaned = (clip(html_to_text(name, MAX_AUTHOR_NAME), MAX_AUTHOR_NAME) for name in islice(names, 2 * MAX_AUTHORS))
    return [name for name in cleaned if name][:MAX_AUTHORS]


def _split_creators(creator: str) -> list[str]:
    text = html_to_text(creator, MAX_AUTHORS * MAX_AUTHOR_NAME)
    return [part.strip() for part in re.split(r",\s*|\s+and\s+", text) if part.strip()]


def _entry_text(entry: Any, key: str, limit: int) -> str:
    """A text field of a feed entry, cleaned; only as much of it is read as can make `limit`
    characters (the rest is clipped anyway, and a hostile feed must not cost more than that)."""
    detail = entry.get(f"{key}_detail") or {}
    value = entry.get(key) or ""
    if not isinstance(value, str):
        return ""
    if detail.get("type") == "text/plain":
        return plain_text(value, limit)
    return html_to_text(value, limit)


def _categories(entry: Any, arxiv_only: bool) -> list[str]:
    terms = [squash(str(tag.get("term") or "")) for tag in entry.get("tags") or []]
    if arxiv_only:
        terms = [t for t in terms if _ARXIV_CATEGORY.match(t)]
    return list(dict.fromkeys(t for t in terms if t))[:MAX_CATEGORIES]


def _finish(paper: ParsedPaper, result: ParseResult) -> None:
    """Apply the size limits, drop entries without a title, and de-duplicate by id."""
    if not paper.title:
        result.skipped.append(f"{paper.id or 'entry'}: no title")
        return
    if len(paper.abstract) > MAX_ABSTRACT:
        result.skipped.append(f"{paper.id}: abstract clipped to {MAX_ABSTRACT} characters")
        paper.abstract = clip(paper.abstract, MAX_ABSTRACT)
    paper.title = clip(paper.title, MAX_TITLE)
    if paper.id in result.ids:
        result.skipped.append(f"{paper.id}: duplicate entry")
        return
    result.ids.add(paper.id)
    result.papers.append(paper)


_CHARREF = re.compile(rb"&#(?:[xX]([0-9A-Fa-f]{1,16})|([0-9]{1,24}));")


def _charref(match: re.Match[bytes]) -> bytes:
    """A numeric character reference, or U+FFFD for one no character has (feedparser would raise)."""
    hexa, decimal = match.groups()
    code = int(hexa, 16) if hexa else int(decimal)
    return match.group() if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else b"&#65533;"


# feedparser raises on some ill-formed markup, losing the whole feed: an end tag that closes nothing
# (`</category>`: KeyError 'tags', `</link>`: KeyError 'links', `</height>`: TypeError), an image's
# empty <width>/<height> or a <textInput> in a broken context (KeyError 'textinput'), the namespace
# extensions GeoRSS/GML (KeyError 'where'), Creative Commons (KeyError 'license') and Podlove
# chapters (TypeError), and an XML declaration naming a broken encoding (ValueError,
# UnicodeDecodeError). Such a feed is read once more, repaired: without stray end tags, the XML
# declaration, images, text inputs (even unfinished tags of them), and any prefixed element but
# those of the few namespaces a paper's fields come from.
_EXTENSION_TAG = re.compile(rb"</?(?!(?:rdf|dc|arxiv|atom|content|xhtml):)[A-Za-z_][\w.-]*:[^<>]*>")
_UNUSED = re.compile(rb"\A\s*<\?xml[^<>]*>|</?(?:width|height|image|textinput)\b[^<>]*>?", re.I)
_TAG = re.compile(rb"<(/?)([A-Za-z_][\w.:-]*)[^<>]*>")


def _without_stray_end_tags(content: bytes) -> bytes:
    """The document without the end tags that close no open element; linear (one stack pass)."""
    stack: list[bytes] = []
    open_count: Counter[bytes] = Counter()

    def keep(tag: re.Match[bytes]) -> bytes:
        name = tag.group(2).lower()
        if not tag.group(1):
            if not tag.group().endswith(b"/>"):
                stack.append(name)
                open_count[name] += 1
            return tag.group()
        if not open_count[name]:
            return b""
        while stack:  # an end tag closes what was opened after its start, as the loose parser does
            top = stack.pop()
            open_count[top] -= 1
            if top == name:
                break
        return tag.group()

    return _TAG.sub(keep, content)


def _feedparser(content: bytes) -> Any:
    """feedparser's reading of the bytes; where feedparser itself breaks, of the bytes repaired
    (stray end tags and unused extension elements dropped), and failing that of the repaired bytes
    as UTF-8 with what is not UTF-8 replaced (its strict parser breaks on such bytes in a namespace)."""
    try:
        return _read(content)
    except Exception as exc:
        failure = exc
    repaired = _without_stray_end_tags(_UNUSED.sub(b"", _EXTENSION_TAG.sub(b"", content)))
    for attempt in dict.fromkeys((repaired, repaired.decode("utf-8", "replace").encode("utf-8"))):
        if attempt == content:
            continue  # the same bytes again would fail the same way
        try:
            return _read(attempt)
        except Exception as exc:
            failure = exc
    raise failure


def _read(content: bytes) -> Any:
    return feedparser.parse(content, sanitize_html=True, resolve_relative_uris=False)


def _parse_xml(content: bytes) -> Any:
    content = _CHARREF.sub(_charref, content) if b"&#" in content else content
    feed = _feedparser(content)
    if not feed.entries and (feed.bozo or not feed.get("version")):
        reason = feed.get("bozo_exception") or "no RSS or Atom document found"
        raise FeedError(f"not a readable feed: {squash(str(reason))[:200]}")
    return feed


def _bozo_warning(feed: Any) -> str | None:
    if not feed.bozo:
        return None
    return f"feed is not well-formed, kept what parsed: {squash(str(feed.get('bozo_exception')))[:200]}"


def _arxiv_paper(entry: Any, ident: str, abstract: str, authors: list[str]) -> ParsedPaper:
    abs_url, pdf_url = arxiv_urls(ident)
    return ParsedPaper(
        id=ident,
        title=_entry_text(entry, "title", MAX_TITLE),
        abstract=abstract,
        authors=_clean_authors(authors),
        categories=_categories(entry, arxiv_only=True),
        published=_struct_to_dt(entry.get("published_parsed")),
        abs_url=abs_url,
        pdf_url=pdf_url,
    )


def _each(items: Iterable[Any], result: ParseResult, read: Callable[[Any, ParseResult], None]) -> None:
    """Read every entry; one that breaks a parser is skipped with its reason, and the rest are kept."""
    for n, item in enumerate(items, start=1):
        try:
            read(item, result)
        except Exception as exc:  # untrusted input: one odd entry must not lose the whole feed
            result.skipped.append(f"entry {n}: unreadable ({type(exc).__name__}: {squash(str(exc))[:120]})")


def _arxiv_rss_entry(entry: Any, result: ParseResult) -> None:
    announce = str(entry.get("arxiv_announce_type") or "new").strip().lower()
    ident = arxiv_id(str(entry.get("id") or "")) or arxiv_id(str(entry.get("link") or ""))
    if announce not in KEEP_ANNOUNCE:
        result.skipped.append(f"{ident or 'entry'}: announce type {announce!r}")
        return
    if ident is None:
        result.skipped.append(f"entry {clip(str(entry.get('id') or ''), 80)!r}: no arXiv id")
        return
    abstract = _RSS_PREFIX.sub("", _entry_text(entry, "summary", MAX_ABSTRACT))
    authors = _split_creators(str(entry.get("author") or ""))
    _finish(_arxiv_paper(entry, ident, abstract, authors), result)


def _feed_result(content: bytes, read: Callable[[Any, ParseResult], None]) -> ParseResult:
    """An RSS or Atom document read entry by entry with `read`, its well-formedness warning kept."""
    feed = _parse_xml(content)
    result = ParseResult(warning=_bozo_warning(feed), entries=len(feed.entries))
    _each(feed.entries, result, read)
    return result


def parse_arxiv_rss(content: bytes) -> ParseResult:
    """arXiv listing RSS (rss.arxiv.org): keep `new` and `cross` announcements, skip replacements."""
    return _feed_result(content, _arxiv_rss_entry)


def _arxiv_atom_entry(entry: Any, result: ParseResult) -> None:
    ident = arxiv_id(str(entry.get("id") or ""))
    if ident is None:
        if "arxiv.org/api/errors" in str(entry.get("id") or ""):
            result.errors.append(_entry_text(entry, "summary", 200) or "unnamed error")
        result.skipped.append(f"entry {clip(str(entry.get('id') or ''), 80)!r}: no arXiv id")
        return
    authors = [str(a.get("name") or "") for a in entry.get("authors") or []]
    _finish(_arxiv_paper(entry, ident, _entry_text(entry, "summary", MAX_ABSTRACT), authors), result)


def parse_arxiv_atom(content: bytes) -> ParseResult:
    """An arXiv API response (export.arxiv.org/api/query), Atom 1.0."""
    return _feed_result(content, _arxiv_atom_entry)


def _pdf_link(entry: Any) -> str | None:
    for link in entry.get("links") or []:
        if link.get("type") == "application/pdf" and _is_http(link.get("href")):
            return str(link["href"])
    return None


# A link with a newline or control character in it is no URL (the loose parser can hand one over
# from broken markup), and it must not reach a reader's email.
_NOT_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def _is_http(url: Any) -> bool:
    return isinstance(url, str) and url.lower().startswith(("http://", "https://")) and not _NOT_IN_URL.search(url)


def _rss_entry(entry: Any, result: ParseResult) -> None:
    link = str(entry.get("link") or "")
    entry_id = str(entry.get("id") or "")
    # An entry naming an arXiv paper (its link, an `arXiv:` id, or a bare arXiv id as its guid) is
    # that paper: its links are built from the id, never taken from the feed.
    ident = arxiv_id(link) or arxiv_id(entry_id)
    key = ident or squash(entry_id) or squash(link)
    if not key:
        result.skipped.append("entry without id or link")
        return
    abs_url, pdf_url = arxiv_urls(ident) if ident else (link if _is_http(link) else "", _pdf_link(entry))
    paper = ParsedPaper(
        id=clip(key, MAX_ID),
        title=_entry_text(entry, "title", MAX_TITLE),
        abstract=_entry_text(entry, "summary", MAX_ABSTRACT),
        authors=_clean_authors(str(a.get("name") or "") for a in entry.get("authors") or []),
        categories=_categories(entry, arxiv_only=False),
        published=_struct_to_dt(entry.get("published_parsed") or entry.get("updated_parsed")),
        abs_url=abs_url,
        pdf_url=pdf_url,
        authoritative=False,
    )
    _finish(paper, result)


def parse_rss(content: bytes) -> ParseResult:
    """Any RSS or Atom feed. arXiv links are recognised so the paper merges with arXiv's row."""
    return _feed_result(content, _rss_entry)


def _hf_item(item: Any) -> tuple[ParsedPaper | None, str | None]:
    if not isinstance(item, dict) or not isinstance(item.get("paper"), dict):
        return None, "item without a paper object"
    paper = item["paper"]
    ident = arxiv_id(str(paper.get("id") or ""))
    if ident is None:
        return None, f"paper id {clip(str(paper.get('id')), 80)!r} is not an arXiv id"
    if paper.get("withdrawnAt") or paper.get("withdrawn") or item.get("withdrawnAt"):
        return None, f"{ident}: withdrawn"
    upvotes = paper.get("upvotes")
    abs_url, pdf_url = arxiv_urls(ident)
    authors = paper.get("authors") if isinstance(paper.get("authors"), list) else []
    return ParsedPaper(
        id=ident,
        title=html_to_text(str(paper.get("title") or item.get("title") or ""), MAX_TITLE),
        abstract=html_to_text(str(paper.get("summary") or item.get("summary") or ""), MAX_ABSTRACT),
        authors=_clean_authors(str(a.get("name") or "") for a in authors if isinstance(a, dict)),
        categories=[],
        published=_iso_to_dt(paper.get("publishedAt")) or _iso_to_dt(item.get("publishedAt")),
        abs_url=abs_url,
        pdf_url=pdf_url,
        upvotes=_count(upvotes),
        on_hf=True,
    ), None


def _json_int(digits: str) -> int | None:
    """A JSON integer, or None for one too long to be a count (Python refuses over 4,300 digits)."""
    return int(digits) if len(digits) <= 18 else None


def _count(value: Any) -> int | None:
    """An upvote count a database column holds: a plain non-negative int below a billion, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT:
        return value
    return None


def parse_hf_json(content: bytes) -> ParseResult:
    """Hugging Face Daily Papers API JSON: a list of {paper: {...}, ...}; withdrawn papers dropped."""
    try:
        items = json.loads(content, parse_int=_json_int)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedError(f"not JSON: {exc}") from exc
    except RecursionError as exc:
        raise FeedError("not JSON we can read: nested too deeply") from exc
    if not isinstance(items, list):
        raise FeedError("expected a JSON list of daily papers")
    result = ParseResult(entries=len(items))
    _each(items, result, _hf_entry)
    return result


def _hf_entry(item: Any, result: ParseResult) -> None:
    paper, problem = _hf_item(item)
    if paper is None:
        result.skipped.append(problem or "unreadable item")
    else:
        _finish(paper, result)


PARSERS: dict[SourceKind, Callable[[bytes], ParseResult]] = {
    SourceKind.ARXIV_RSS: parse_arxiv_rss,
    SourceKind.ARXIV_ATOM: parse_arxiv_atom,
    SourceKind.HF_JSON: parse_hf_json,
    SourceKind.RSS: parse_rss,
}


def parse(kind: SourceKind, content: bytes) -> ParseResult:
    """Parse the bytes of a source of the given kind; FeedError (one clear line) for anything that
    stops the parser itself — never another exception, whatever the bytes hold."""
    try:
        return PARSERS[kind](content)
    except FeedError:
        raise
    except Exception as exc:  # a parser bug on one hostile feed is that feed's error, not a crash
        reason = squash(f"{type(exc).__name__}: {exc}")[:200]
        raise FeedError(f"the {kind.value} parser could not read this feed: {reason}") from exc
