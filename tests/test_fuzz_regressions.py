"""Every input `make fuzz` (tests/fuzz/) found breaking a promise, minimal and inline, run through
the same checks the harnesses apply (tests/fuzz/checks.py) and pinned to the behaviour of the fix."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from digest.config import SourceKind
from digest.parse import FeedError, parse
from digest.query import MAX_DEPTH, QueryError, parse_query
from digest.text import _stray_lt_escaped, html_to_text, plain_text, squash, words
from tests.fuzz.checks import check_parse, check_query, check_text


def rss(extra: bytes) -> bytes:
    """An RSS feed of one paper, with `extra` markup inside its item."""
    return (
        b"<rss><channel><item><title>T</title><link>https://arxiv.org/abs/2406.00001</link>"
        + extra
        + b"</item></channel></rss>"
    )


def atom(extra: bytes) -> bytes:
    """An arXiv API (Atom) feed of one paper, with `extra` markup inside its entry."""
    return (
        b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2406.00001v1</id>'
        b"<title>T</title><summary>s</summary>" + extra + b"</entry></feed>"
    )


def hf(title: bytes) -> bytes:
    """A Hugging Face daily-papers list of one paper with this (JSON-escaped) title."""
    return b'[{"paper": {"id": "2406.00001", "title": "' + title + b'", "summary": "s"}}]'


# (source kind, feed bytes, the titles of the papers it must yield)
FEEDS: list[tuple[SourceKind, bytes, list[str]]] = [
    # feedparser's own namespace handlers raised out of feedparser.parse, and the whole feed was
    # lost behind parse's guard: GeoRSS/GML (KeyError 'where'), Creative Commons (KeyError
    # 'license'), Podlove chapters (TypeError on a chapter without `start`).
    *((kind, rss(b"<gml:pos>1 2</gml:pos>"), ["T"]) for kind in (SourceKind.ARXIV_RSS, SourceKind.RSS)),
    *((kind, rss(b"</creativeCommons:license>"), ["T"]) for kind in (SourceKind.ARXIV_RSS, SourceKind.RSS)),
    *(
        (kind, rss(b"<psc:chapters><psc:chapter/></psc:chapters>"), ["T"])
        for kind in (SourceKind.ARXIV_RSS, SourceKind.RSS)
    ),
    (SourceKind.ARXIV_ATOM, atom(b"<gml:pos>1</gml:pos>"), ["T"]),
    # Malformed tags that leave an end tag closing nothing open: feedparser's _end_category and
    # _end_link raised (KeyError 'tags', 'links') and the whole feed was lost; found from
    # feedparser's own test documents mutated, minimized by hand.
    *((kind, rss(b"<category</entry>t</category>"), ["T"]) for kind in (SourceKind.ARXIV_RSS, SourceKind.RSS)),
    (SourceKind.ARXIV_ATOM, atom(b"<link</item</link>"), ["T"]),
    (SourceKind.RSS, b"<item<category</entry>t</category>", []),
    (SourceKind.ARXIV_ATOM, b"<feed<entry<link</item</link>", []),
    # A stray </height> (of an RSS <image>): _end_height called int(None), TypeError.
    *((kind, rss(b"</height>"), ["T"]) for kind in (SourceKind.ARXIV_RSS, SourceKind.RSS)),
    # An empty <height> in a broken context (int(None) in _end_height), and XML declarations naming a
    # broken encoding (ValueError: embedded null character; UnicodeDecodeError).
    (SourceKind.RSS, rss(b"<description<height></height>"), ["T"]),
    (SourceKind.RSS, b'<?xml version="1.0" encoding="u\x00tf-8"?>' + rss(b""), ["T"]),
    # A <textInput> where feedparser has no context for it: KeyError 'textinput'.
    *((kind, rss(b"<entry<textInput<description>"), ["T"]) for kind in (SourceKind.ARXIV_RSS, SourceKind.RSS)),
    (SourceKind.ARXIV_RSS, b'<?xml version="1.0" encoding="bogus\xd8"?>' + rss(b""), ["T"]),
    # A link with a newline in it became the paper's abs_url (the loose parser keeps it), on its way
    # into an email's href.
    (
        SourceKind.RSS,
        b"<rss><channel><item><title>T</title><link>http://a.example/\n/b</link></item></channel></rss>",
        ["T"],
    ),
    # Python's HTMLParser raised AssertionError on a marked section it does not know (`<![b>`), so
    # the entry was skipped as unreadable.
    (SourceKind.HF_JSON, hf(b"x<![b>y"), ["xy"]),
    (SourceKind.HF_JSON, hf(b"<![if !IE]>T<![endif]>"), ["T"]),
    # A lone surrogate escaped in JSON reached the title: no UTF-8 encoding exists for it, so the
    # database and the email would fail on it later, far from the feed.
    (SourceKind.HF_JSON, hf(rb"T\ud800x"), ["T x"]),
    (SourceKind.HF_JSON, hf(rb"\udfff"), []),
]


def test_a_namespace_that_is_not_utf8_no_longer_breaks_feedparser() -> None:
    """`make fuzz` (rss): feedparser's strict parser raised ValueError (a namespace URI with a byte
    that is not UTF-8), so the feed was lost as 'the parser could not read this feed'. Read again
    with such bytes replaced, it is what it is: a document with no entry."""
    content = b'<!----><r v="" xmlns:dc="h\xff/"><dc:h>e gt'
    with pytest.raises(FeedError, match="not a readable feed") as caught:
        parse(SourceKind.RSS, content)
    assert "parser could not read" not in str(caught.value)


@pytest.mark.parametrize(("kind", "content", "titles"), FEEDS)
def test_feed(kind: SourceKind, content: bytes, titles: list[str]) -> None:
    result = check_parse(kind, content)
    assert result is not None
    assert [p.title for p in result.papers] == titles
    assert [p.title for p in parse(kind, content).papers] == titles


# (topic, the column QueryError names, or None when it is valid)
TOPICS: list[tuple[str, int | None]] = [
    # 299 open parentheses: RecursionError out of the parser instead of a QueryError.
    ("(" * 299 + "a", MAX_DEPTH + 1),
    ("(-" * 100 + "a", MAX_DEPTH + 1),
    ("-" * (MAX_DEPTH + 1) + "a", MAX_DEPTH + 1),
    ("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH, None),
    ("-" * MAX_DEPTH + "a", None),
]


@pytest.mark.parametrize(("topic", "column"), TOPICS)
def test_topic(topic: str, column: int | None) -> None:
    check_query(topic)
    if column is None:
        parse_query(topic)
        return
    with pytest.raises(QueryError) as caught:
        parse_query(topic)
    assert caught.value.column == column


# (cleaner, text, what it makes of it)
TEXTS: list[tuple[Callable[[str], str], str, str]] = [
    # C1 controls (U+0080–U+009F) and lone surrogates were kept by squash, so by every cleaner.
    *((clean, "a\x81b\x9fc", "a b c") for clean in (squash, html_to_text, plain_text)),
    *((clean, "a\ud800b", "a b") for clean in (squash, html_to_text, plain_text)),
    (squash, "\ud83d\ude00", ""),
    # HTMLParser's AssertionError on unknown marked sections (see FEEDS): dropped like any tag.
    (html_to_text, "a<![b>c", "ac"),
    (html_to_text, "<![>x", "x"),
    (html_to_text, "a <![if !IE]>b<![endif]>", "a b"),
    (html_to_text, "<![CDATA[y]]>x", "x"),
    # Comments never reach HTMLParser; a `<!--` no `-->` follows is a dropped tag (see
    # test_unclosed_comments_are_linear).
    (html_to_text, "a<!--x>b", "ab"),
    (html_to_text, "a<!-- x > y -->b", "ab"),
    (html_to_text, "a<!-- x -- >b", "ab"),
    # Tags reach HTMLParser without their attributes (see test_tags_reach_the_parser_without_attributes).
    (html_to_text, 'p<b c="y>q', "pq"),
    (html_to_text, '<a title="it\'s">x</a>', "x"),
]


@pytest.mark.parametrize(("clean", "text", "cleaned"), TEXTS)
def test_text(clean: Callable[[str], str], text: str, cleaned: str) -> None:
    check_text(text, 3)
    assert clean(text) == cleaned


def test_unclosed_comments_are_linear() -> None:
    """A fuzz timeout (5 s on 23 characters repeated): HTMLParser searched the rest of the text for
    the end of each unclosed `<!--`, quadratic; now no unclosed comment reaches it."""
    found = "<!-,cGd\x00>\x00\x00[<!--cGd\x00\x00\x00>"
    assert "<!--" not in _stray_lt_escaped(found * 10_000)
    assert html_to_text(found) == "["
    # A later one: comments that closed only inside a declaration dropped around them (`<!bfd!-->`).
    later = "\x00<b><!-e\x7f<lte-><!--b-><!--b/>?>>2<!bfd!-->\x18&lte-><"
    assert "<!" not in _stray_lt_escaped(later * 10_000)


@pytest.mark.parametrize("found", ['<bb//A=">[<b\x7f_/A="*' + "\x00" * 31, '<dA="b/A="C>>'])
def test_tags_reach_the_parser_without_attributes(found: str) -> None:
    """Two fuzz timeouts (found by the linear-time check): HTMLParser's attribute scan ran from a
    quote it read as open on to the next quote of the text, for each such tag. Cleaning keeps only
    text, so tags reach it as a bare name: nothing to scan."""
    tags = re.findall(r"<[^<>]*>", _stray_lt_escaped(found * 10_000))
    assert tags and all(re.fullmatch(r"</?[A-Za-z][A-Za-z0-9:-]*>", tag) for tag in tags)


@pytest.mark.parametrize("text", ["\uff9e", "a \uff9f b"])
def test_no_empty_words(text: str) -> None:
    """Halfwidth katakana sound marks decompose to combining marks only, which strip_accents drops:
    words() gave an empty word (a topic of it matched an empty key)."""
    check_text(text, 3)
    assert all(words(text))
