"""Ingest: fetch each configured source, parse it, and merge its papers into one row per paper."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import TypeVar

import httpx
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from digest.config import Settings, SourceConfig, SourceKind
from digest.enrich import ENRICH_NAME, enrich
from digest.fetch import Fetched, Throttle, Validators, fetch, make_client
from digest.models import Paper, SourceState
from digest.parse import FeedError, ParsedPaper, ParseResult, parse

log = logging.getLogger(__name__)
_T = TypeVar("_T")


@dataclass
class SourceReport:
    """What one source did in one run: for the CLI table and for operators."""

    name: str
    ok: bool = True
    new: int = 0
    updated: int = 0
    parsed: int = 0
    entries: int = 0
    not_modified: bool = False
    error: str | None = None
    problems: list[str] = field(default_factory=list)


_DESCRIBED = ("title", "abstract", "authors", "published", "abs_url", "pdf_url")
_KEPT = (*_DESCRIBED, "categories", "upvotes", "upvote_history", "on_hf", "needs_arxiv", "sources", "authoritative")
# A paper's upvote history keeps at most this many rises (a paper re-read hourly for the 4 days
# of a dated source rises at most ~100 times; the bound only guards against odd data).
MAX_HISTORY = 200


def _snapshot(row: Paper) -> tuple[object, ...]:
    return tuple(getattr(row, name) for name in _KEPT)


def _from_arxiv(paper: ParsedPaper) -> bool:
    """Whether arXiv's own feeds (listing RSS or API Atom) described the paper."""
    return paper.authoritative and not paper.on_hf


def _flags(row: Paper, paper: ParsedPaper) -> None:
    """`on_hf` once Hugging Face described the paper; `needs_arxiv` while only Hugging Face did.

    Called before the categories are merged: a row arXiv described is authoritative with categories
    (Hugging Face gives none, a generic feed is never authoritative)."""
    if _from_arxiv(paper):
        row.needs_arxiv = False
    elif paper.on_hf and not row.on_hf:
        row.needs_arxiv = not (row.authoritative and row.categories)
    row.on_hf = row.on_hf or paper.on_hf


def _bounded(history: list[list[int]]) -> list[list[int]]:
    """At most MAX_HISTORY entries: past that, the rise that was smallest over the entry before it
    goes (never the first or the newest), so the time a threshold was first met stays exact except
    for the fewest counts, and only ever moves later."""
    while len(history) > MAX_HISTORY:
        drop = min(range(1, len(history) - 1), key=lambda i: history[i][0] - history[i - 1][0])
        history = history[:drop] + history[drop + 1 :]
    return history


def _count_upvotes(row: Paper, count: int, now: datetime) -> None:
    """Take the newest count; record it in the history when it is higher than every count before.

    A row stored before histories were kept starts its history with the count it had, at the time
    it was first seen. The JSON column gets a new list: a change in place would not be saved."""
    history = list(row.upvote_history)
    if not history and row.upvotes is not None:
        history = [[row.upvotes, int(row.first_seen.timestamp())]]
    if not history or count > max(entry[0] for entry in history):
        history = _bounded([*history, [count, int(now.timestamp())]])
    if history != row.upvote_history:
        row.upvote_history = history
    row.upvotes = count


def _merge(row: Paper, paper: ParsedPaper, source: str, now: datetime) -> bool:
    """Fill what the row lacks, take the newest upvote count, record the source. True if changed.

    arXiv and Hugging Face replace what a generic feed said about a paper; otherwise the first
    description stays (a later v2 or another source never rewrites what readers already saw)."""
    before = _snapshot(row)
    replace = paper.authoritative and not row.authoritative
    _flags(row, paper)
    text = (row.title, row.abstract)
    for name in _DESCRIBED:
        new = getattr(paper, name)
        if new and (replace or not getattr(row, name)):
            setattr(row, name, new)
    if (row.title, row.abstract) != text:  # its vector described the old text: embed it again
        row.embedding, row.embedding_model = None, None
    row.authoritative = row.authoritative or paper.authoritative
    row.categories = list(dict.fromkeys([*row.categories, *paper.categories]))
    if paper.upvotes is not None:
        _count_upvotes(row, paper.upvotes, now)
    row.sources = list(dict.fromkeys([*row.sources, source]))
    if _snapshot(row) == before:
        return False
    row.updated_at = now
    return True


def _new_row(paper: ParsedPaper, source: str, now: datetime) -> Paper:
    return Paper(
        id=paper.id,
        title=paper.title,
        abstract=paper.abstract,
        authors=paper.authors,
        categories=paper.categories,
        published=paper.published,
        abs_url=paper.abs_url,
        pdf_url=paper.pdf_url,
        upvotes=paper.upvotes,
        upvote_history=[] if paper.upvotes is None else [[paper.upvotes, int(now.timestamp())]],
        on_hf=paper.on_hf,
        needs_arxiv=paper.on_hf and not paper.categories,
        sources=[source],
        authoritative=paper.authoritative,
        first_seen=now,
        updated_at=now,
    )


def store_papers(session: Session, papers: Sequence[ParsedPaper], source: str, now: datetime) -> tuple[int, int]:
    """Upsert papers by id; returns (new, updated). Safe to run twice and against a racing run."""
    for attempt in range(3):
        try:
            counts = _store_once(session, papers, source, now)
            session.commit()
            return counts
        except IntegrityError:
            # Another worker inserted one of these ids first: reload and merge into its row.
            session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _store_once(session: Session, papers: Sequence[ParsedPaper], source: str, now: datetime) -> tuple[int, int]:
    ids = [p.id for p in papers]
    existing: dict[str, Paper] = {}
    for start in range(0, len(ids), 500):
        rows = session.exec(select(Paper).where(Paper.id.in_(ids[start : start + 500])))  # type: ignore[attr-defined]
        existing.update({row.id: row for row in rows})
    new = updated = 0
    for paper in papers:
        row = existing.get(paper.id)
        if row is None:
            row = _new_row(paper, source, now)
            session.add(row)
            existing[paper.id] = row
            new += 1
        elif _merge(row, paper, source, now):
            session.add(row)
            updated += 1
    session.flush()
    return new, updated


def ingest_bytes(
    session: Session, content: bytes, kind: SourceKind, source: str, now: datetime
) -> tuple[ParseResult, int, int]:
    """Parse bytes of a feed and store its papers; raises FeedError if it is not a feed at all."""
    result = parse(kind, content)
    new, updated = store_papers(session, result.papers, source, now)
    for problem in result.skipped:
        log.info("source %s: skipped %s", source, problem)
    if result.warning:
        log.warning("source %s: %s", source, result.warning)
    return result, new, updated


def _state(session: Session, name: str) -> SourceState:
    return session.get(SourceState, name) or SourceState(name=name)


def source_urls(source: SourceConfig, now: datetime) -> list[str]:
    """The URLs to fetch for a source this run: dated sources get today and `days_back` days."""
    if "{date}" not in source.url:
        return [source.url]
    days = [(now - timedelta(days=back)).date().isoformat() for back in range(source.days_back + 1)]
    return [source.url.replace("{date}", day) for day in days]


def _record(state: SourceState, report: SourceReport, fetched: Fetched | None, now: datetime) -> None:
    state.last_attempt = now
    if report.ok:
        state.last_success = now
        state.consecutive_failures = 0
        state.last_error = None
        state.papers_last_run = report.new + report.updated
        state.papers_total = (state.papers_total or 0) + report.new
        state.not_before = None
    else:
        state.last_error = report.error
        state.consecutive_failures += 1
        state.failures_total = (state.failures_total or 0) + 1
        state.not_before = fetched.retry_at if fetched else None


def run_source(
    session: Session,
    client: httpx.Client,
    source: SourceConfig,
    settings: Settings,
    throttle: Throttle,
    now: datetime,
) -> SourceReport:
    """Fetch, parse and store one source, recording its health. Never raises for a bad feed."""
    state = _state(session, source.name)
    report = SourceReport(source.name)
    if state.not_before and state.not_before > now:
        report.ok, report.error = (
            False,
            f"waiting until {state.not_before:%H:%M} UTC (server asked us to retry later)",
        )
        return report
    fetched: Fetched | None = None
    validators: tuple[str, Fetched] | None = None
    for url in source_urls(source, now):
        mine = url == state.validators_url  # validators belong to one URL (dated URLs change daily)
        fetched = fetch(
            client, url, now=now, validators=Validators(state.etag, state.last_modified) if mine else None,
            max_bytes=settings.fetch_max_bytes, throttle=throttle, origin=source.url,
        )  # fmt: skip
        _absorb(session, source, fetched, report, now)
        validators = validators or _kept(url, fetched, state)
        if not report.ok:
            break
    # An empty but well-formed feed is a healthy run: arXiv lists nothing at weekends and on
    # holidays, Hugging Face has empty days. Bytes that are no feed at all failed in `_absorb`.
    if report.ok and validators is not None:
        # Kept only after a good run, so a broken feed is never "not modified" next time.
        url, good = validators
        state.validators_url, state.etag, state.last_modified = url, good.etag, good.last_modified
    _record(state, report, fetched, now)
    session.add(state)
    session.commit()
    return report


def _kept(url: str, fetched: Fetched, state: SourceState) -> tuple[str, Fetched] | None:
    """The validators to keep from this URL: a good answer's, or after a 304 the ones we sent (so a
    dated source's unchanged day keeps them instead of handing them to the next day's URL)."""
    if fetched.status == "ok":
        return url, fetched
    if fetched.status == "not_modified":
        return url, Fetched("ok", etag=state.etag, last_modified=state.last_modified)
    return None


def _absorb(session: Session, source: SourceConfig, fetched: Fetched, report: SourceReport, now: datetime) -> None:
    if fetched.status == "not_modified":
        report.not_modified = True
        return
    if fetched.status == "error":
        report.ok, report.error = False, fetched.error
        return
    try:
        result, new, updated = ingest_bytes(session, fetched.content, source.kind, source.name, now)
    except FeedError as exc:
        report.ok, report.error = False, str(exc)
        return
    report.new, report.updated = report.new + new, report.updated + updated
    report.parsed += len(result.papers)
    report.problems += result.skipped + ([result.warning] if result.warning else [])
    report.entries += result.entries


def fetch_all(session: Session, settings: Settings, now: datetime, only: str | None = None) -> list[SourceReport]:
    """Run every configured source (or just `only`), then — on a full run, when an arXiv API URL is
    set — ask arXiv about the papers only Hugging Face described (`digest.enrich`). One failing
    step never stops the others."""
    sources = [s for s in settings.sources if only is None or s.name == only]
    throttle = Throttle(settings.arxiv_min_interval)
    reports = []
    with make_client(settings.fetch_timeout) as client:
        for source in sources:
            step = partial(run_source, session, client, source, settings, throttle, now)
            reports.append(_guarded(session, source.name, step))
        if only is None and settings.arxiv_api_url:
            enriched = _guarded(session, ENRICH_NAME, partial(_enrich, session, client, settings, throttle, now))
            reports += [enriched] if enriched is not None else []
    return reports


def _guarded(session: Session, name: str, step: Callable[[], _T]) -> _T | SourceReport:
    """Run one step of a fetch run; a bug or a database hiccup in it must not stop the rest."""
    try:
        return step()
    except Exception as exc:
        session.rollback()
        log.exception("source %s failed", name)
        return SourceReport(name, ok=False, error=f"internal error: {exc}"[:300])


def _enrich(
    session: Session, client: httpx.Client, settings: Settings, throttle: Throttle, now: datetime
) -> SourceReport | None:
    """The arXiv enrichment as one more line of the run's report (none when no paper waited)."""
    done = enrich(session, client, settings, throttle, now)
    if done is None:
        return None
    return SourceReport(
        ENRICH_NAME, ok=done.error is None, updated=done.described, parsed=done.parsed, entries=done.entries,
        error=done.error, problems=done.problems,
    )  # fmt: skip
