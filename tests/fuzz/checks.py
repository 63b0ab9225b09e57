"""What must hold for any input: the checks the harnesses run and tests/test_fuzz_regressions.py repeats.

No atheris here, so the regression tests (and mypy) import it like any module."""

from __future__ import annotations

import time
import unicodedata
from datetime import UTC, datetime

from digest.config import SourceKind
from digest.match import PaperIndex, PaperRecord, select
from digest.parse import (
    MAX_ABSTRACT,
    MAX_AUTHOR_NAME,
    MAX_AUTHORS,
    MAX_CATEGORIES,
    MAX_COUNT,
    MAX_ID,
    MAX_TITLE,
    FeedError,
    ParseResult,
    parse,
)
from digest.query import QueryError, describe_error, parse_query, positive_terms
from digest.text import clip, html_to_text, plain_text, squash, words

# Line and paragraph separators break a mail header or a text line as surely as a newline does.
_SEPARATORS = frozenset("\u2028\u2029")


class InvariantError(AssertionError):
    """An input broke a promise of the code under test (a finding, not a rejection)."""


def bad_character(text: str) -> str | None:
    """The first control character, lone surrogate or line separator in text, if any."""
    for ch in text:
        if ch in _SEPARATORS or unicodedata.category(ch) in ("Cc", "Cs"):
            return ch
    return None


def check_plain(what: str, text: str, limit: int | None = None) -> None:
    """Text that reaches a reader: one line, printable, within its limit."""
    ch = bad_character(text)
    if ch is not None:
        raise InvariantError(f"{what} holds {ch!r}: {text[:80]!r}")
    if limit is not None and len(text) > limit:
        raise InvariantError(f"{what} is {len(text)} characters, over {limit}")


def check_result(result: ParseResult) -> None:
    """Every paper of a parse result is plain text within the size limits."""
    for paper in result.papers:
        check_plain("id", paper.id, MAX_ID)
        check_plain("title", paper.title, MAX_TITLE)
        check_plain("abstract", paper.abstract, MAX_ABSTRACT)
        check_plain("abs_url", paper.abs_url)
        check_plain("pdf_url", paper.pdf_url or "")
        if not paper.title:
            raise InvariantError(f"{paper.id}: kept without a title")
        if len(paper.authors) > MAX_AUTHORS or len(paper.categories) > MAX_CATEGORIES:
            raise InvariantError(f"{paper.id}: {len(paper.authors)} authors, {len(paper.categories)} categories")
        for name in paper.authors:
            check_plain("author", name, MAX_AUTHOR_NAME)
        for category in paper.categories:
            check_plain("category", category)
        if paper.upvotes is not None and not 0 <= paper.upvotes < MAX_COUNT:
            raise InvariantError(f"{paper.id}: upvotes {paper.upvotes}")


def check_query_error(query: str, error: QueryError) -> None:
    """A rejection points inside the topic (or just past its end) and says why."""
    if not 1 <= error.column <= len(query) + 1:
        raise InvariantError(f"column {error.column} outside a topic of {len(query)} characters")
    if not error.reason:
        raise InvariantError("a QueryError without a reason")


GUARD_MESSAGE = "parser could not read this feed"
UNREADABLE = "unreadable ("


def check_parse(kind: SourceKind, content: bytes, *, strict: bool = True) -> ParseResult | None:
    """The parse result of content (None for a FeedError), after checking the invariants."""
    try:
        result = parse(kind, content)
    except FeedError as error:
        if strict and GUARD_MESSAGE in str(error):
            raise InvariantError(f"parser bug behind the guard: {error}") from error
        return None
    check_result(result)
    unreadable = [reason for reason in result.skipped if UNREADABLE in reason]
    if strict and unreadable:
        raise InvariantError(f"entry lost to a parser bug: {unreadable[0]}")
    return result


def check_text(text: str, limit: int) -> None:
    """The promises of digest.text for one string and one clip limit (1 or more)."""
    for name, cleaned in (
        ("html_to_text", html_to_text(text)),
        ("html_to_text(limit)", html_to_text(text, limit)),
        ("plain_text", plain_text(text)),
        ("plain_text(limit)", plain_text(text, limit)),
        ("squash", squash(text)),
    ):
        check_plain(name, cleaned)
        if cleaned != cleaned.strip() or "  " in cleaned:
            raise InvariantError(f"{name} left runs of whitespace: {cleaned[:80]!r}")
    clipped = clip(text, limit)
    if len(clipped) > limit:
        raise InvariantError(f"clip({limit}) gave {len(clipped)} characters")
    if len(text) <= limit and clipped != text:
        raise InvariantError(f"clip({limit}) changed a text that fits")
    for word in words(text):
        # Only non-empty: NFKD may fold a letter into non-letters (¾ → 3⁄4), alike on both sides of a match.
        if not word:
            raise InvariantError("words gave an empty word")


# Cleaning a text repeated to the larger size may take 8 times as long as to the smaller (linear),
# not LINEAR_RATIO times; the floor keeps timer noise on small inputs from counting.
LINEAR_SIZES = (32_768, 262_144)
LINEAR_RATIO = 24
LINEAR_FLOOR_SECONDS = 0.25


def _seconds(text: str) -> float:
    start = time.perf_counter()
    check_text(text, 300)
    return time.perf_counter() - start


def check_linear(text: str) -> None:
    """Text cleaning on `text` repeated stays linear in time: a ratio of two sizes, not a deadline,
    so it holds on a slow or busy machine and under coverage instrumentation alike."""
    if not text:
        return
    small, big = (text * max(1, size // len(text)) for size in LINEAR_SIZES)
    fast, slow = _seconds(small), _seconds(big)
    if slow > LINEAR_FLOOR_SECONDS and slow > LINEAR_RATIO * fast:
        # Measured again, the best of three each, before it counts: a busy machine stalls one run.
        fast = min(fast, _seconds(small), _seconds(small))
        slow = min(slow, _seconds(big), _seconds(big))
    if slow > LINEAR_FLOOR_SECONDS and slow > LINEAR_RATIO * fast:
        raise InvariantError(f"{len(big)} characters took {slow:.2f}s, {len(small)} took {fast:.3f}s: not linear")


_DAY = datetime(2026, 12, 1, tzinfo=UTC)
PAPERS = [
    PaperRecord(
        "2406.00001", "Long-context agents with a KV-cache", "We study retrieval augmented generation for LLMs.",
        ["Yann LeCun", "Ada Pérez"], ["cs.CL", "cs.AI"], _DAY, 12, _DAY, "https://arxiv.org/abs/2406.00001", None,
    ),
    PaperRecord(
        "2406.00002", "A survey of diffusion models", "Image and vision transformers; chain of thought.",
        ["Geoffrey Hinton"], ["cs.CV", "stat.ML"], None, None, _DAY, "https://arxiv.org/abs/2406.00002", None,
    ),
    PaperRecord(
        "2406.00003", "GPT-4o on GPUs", "", [], ["math.OC"], _DAY, 0, _DAY, "https://arxiv.org/abs/2406.00003", None,
    ),
]  # fmt: skip


def check_query(query: str) -> None:
    """The promises of the query language for one topic."""
    try:
        node = parse_query(query)
    except QueryError as error:
        check_query_error(query, error)
        describe_error(error)
        return
    positive_terms(node)
    # A fresh index each time: its per-topic cache would otherwise grow with every input.
    index = PaperIndex(PAPERS)
    selection = select(index, [query, "diffusion"], candidates=index.all, cap=2)
    if index.topic(query) is None:
        raise InvariantError("a topic parse_query accepts is refused when compiled")
    if len(selection.matches) > 2:
        raise InvariantError(f"cap 2 gave {len(selection.matches)} matches")
