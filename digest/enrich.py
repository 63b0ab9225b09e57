"""Enrich: papers only Hugging Face described get arXiv's categories and full author list.

After the sources of a fetch run, the papers waiting for it (`Paper.needs_arxiv`), newest first,
are asked of the arXiv API in one batched `id_list` query, through the run's client and throttle.
A paper arXiv answered for, or answered without, is done; a failed request changes nothing, so the
same papers are asked again on the next run."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import httpx
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.fetch import Fetched, Throttle, fetch
from digest.models import Paper, SourceState
from digest.parse import FeedError, ParsedPaper, ParseResult, arxiv_id, parse_arxiv_atom

log = logging.getLogger(__name__)

# The name of this step in a run's report and of the SourceState row that keeps the back-off the
# API asked for. No configured source is meant to have it: the prefix marks a step, as `file:`
# marks an ingested file.
ENRICH_NAME = "enrich:arxiv-api"


@dataclass
class Enriched:
    """What one enrichment step did."""

    asked: int  # papers in the request (or that would have been, when it was not sent)
    described: int = 0  # papers arXiv answered for: categories and authors taken
    unknown: int = 0  # papers arXiv answered without: they keep what Hugging Face gave
    parsed: int = 0
    entries: int = 0
    problems: list[str] = field(default_factory=list)
    error: str | None = None  # one line for the operator; None when the request was answered


def query_url(api_url: str, ids: Sequence[str]) -> str:
    """The arXiv API query asking for exactly these papers."""
    joiner = "&" if "?" in api_url else "?"
    return f"{api_url}{joiner}id_list={','.join(ids)}&max_results={len(ids)}"


def pending(session: Session, limit: int) -> list[Paper]:
    """Up to `limit` papers waiting for arXiv, newest first. Ids that are not arXiv's are set aside
    (they would break the whole query) and never asked."""
    query = (
        select(Paper)
        .where(col(Paper.needs_arxiv).is_(True))
        .order_by(col(Paper.first_seen).desc(), col(Paper.id).desc())
        .limit(limit)
    )
    rows = list(session.exec(query))
    for row in rows:
        if arxiv_id(row.id) != row.id:
            row.needs_arxiv = False
    return [row for row in rows if row.needs_arxiv]


def enrich(
    session: Session, client: httpx.Client, settings: Settings, throttle: Throttle, now: datetime
) -> Enriched | None:
    """Ask arXiv about the papers waiting for it, in one request; None when none waits."""
    rows = pending(session, settings.arxiv_enrich_batch)
    session.commit()
    if not rows:
        return None
    state = session.get(SourceState, ENRICH_NAME)
    if state is not None and state.not_before is not None and state.not_before > now:
        wait = f"waiting until {state.not_before:%H:%M} UTC (server asked us to retry later)"
        return Enriched(len(rows), error=f"{wait}; {len(rows)} papers left for a later run")
    url = query_url(settings.arxiv_api_url, [row.id for row in rows])
    fetched = fetch(client, url, now=now, max_bytes=settings.fetch_max_bytes, throttle=throttle)
    done = _apply(rows, fetched, now)
    _record(session, state, done, fetched, now)
    session.commit()
    if done.error:
        log.warning("arXiv enrichment failed: %s", done.error)
    else:
        log.info("arXiv enrichment: %d papers described, %d unknown to arXiv", done.described, done.unknown)
    return done


def _answer(fetched: Fetched) -> ParseResult | str:
    """The parsed answer, or why there is none to use."""
    if fetched.status != "ok":
        return fetched.error or "answered 304 Not Modified to a plain request"
    try:
        result = parse_arxiv_atom(fetched.content)
    except FeedError as exc:
        return f"the answer is not an arXiv Atom feed: {exc}"
    if result.errors:
        return f"arXiv API error: {result.errors[0]}"[:300]
    return result


def _apply(rows: Sequence[Paper], fetched: Fetched, now: datetime) -> Enriched:
    """Take arXiv's answer into the rows. A paper the answer lacks is done too, unless the answer
    came cut short (not well-formed): then it may just not have arrived, and waits."""
    answer = _answer(fetched)
    if isinstance(answer, str):
        return Enriched(len(rows), error=f"{answer}; {len(rows)} papers left for the next run")
    found = {paper.id: paper for paper in answer.papers}
    done = Enriched(len(rows), parsed=len(answer.papers), entries=answer.entries)
    done.problems = answer.skipped + ([answer.warning] if answer.warning else [])
    for row in rows:
        paper = found.get(row.id)
        if paper is not None:
            _describe(row, paper, now)
            done.described += 1
        elif answer.warning is None:
            row.needs_arxiv = False
            done.unknown += 1
    return done


def _describe(row: Paper, paper: ParsedPaper, now: datetime) -> None:
    """arXiv's categories (first, then any the row had) and its author list (when it has one);
    title, abstract and upvotes stay as Hugging Face gave them, blanks filled."""
    row.categories = list(dict.fromkeys([*paper.categories, *row.categories]))
    if paper.authors:
        row.authors = paper.authors
    row.abstract = row.abstract or paper.abstract
    row.published = row.published or paper.published
    row.pdf_url = row.pdf_url or paper.pdf_url
    row.needs_arxiv = False
    row.updated_at = now


def _record(session: Session, state: SourceState | None, done: Enriched, fetched: Fetched, now: datetime) -> None:
    """Keep the back-off a 429/503 asked for. The row exists only once one was asked: it is no
    source's health (its failures are not counted, so `digest status` never flags it)."""
    if state is None and fetched.retry_at is None:
        return
    state = state or SourceState(name=ENRICH_NAME)
    state.last_attempt = now
    state.not_before = fetched.retry_at
    state.last_error = done.error
    state.last_success = now if done.error is None else state.last_success
    session.add(state)
