"""Small builders for rows the pipeline tests need."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlmodel import Session

from digest.models import Frequency, Paper, Subscriber, SubscriberStatus
from digest.parse import arxiv_urls


def paper(
    pid: str,
    title: str,
    abstract: str = "An abstract.",
    *,
    first_seen: datetime,
    authors: Sequence[str] = ("Ada Lovelace", "Alan Turing"),
    categories: Sequence[str] = ("cs.CL",),
    upvotes: int | None = None,
    published: datetime | None = None,
    sources: Sequence[str] = ("arxiv",),
    on_hf: bool = False,
    upvote_history: Sequence[tuple[int, datetime]] = (),
) -> Paper:
    abs_url, pdf_url = arxiv_urls(pid)
    return Paper(
        id=pid,
        title=title,
        abstract=abstract,
        authors=list(authors),
        categories=list(categories),
        published=published or first_seen - timedelta(hours=12),
        abs_url=abs_url,
        pdf_url=pdf_url,
        upvotes=upvotes,
        sources=list(sources),
        on_hf=on_hf,
        upvote_history=[[count, int(at.timestamp())] for count, at in upvote_history],
        first_seen=first_seen,
        updated_at=first_seen,
    )


def add_papers(session: Session, *papers: Paper) -> None:
    for p in papers:
        session.add(p)
    session.commit()


def subscriber(
    session: Session,
    email: str,
    topics: Sequence[str],
    *,
    joined: datetime,
    status: SubscriberStatus = SubscriberStatus.ACTIVE,
    frequency: Frequency = Frequency.DAILY,
    send_hour: int = 8,
    timezone: str = "UTC",
    weekly_day: int = 0,
    min_upvotes: int | None = None,
    max_papers: int = 25,
    trending: int | None = None,
) -> Subscriber:
    sub = Subscriber(
        email=email,
        status=status,
        topics=list(topics),
        frequency=frequency,
        send_hour=send_hour,
        timezone=timezone,
        weekly_day=weekly_day,
        min_upvotes=min_upvotes,
        max_papers=max_papers,
        trending=trending,
        created_at=joined,
        confirmed_at=joined if status is SubscriberStatus.ACTIVE else None,
    )
    session.add(sub)
    session.commit()
    session.refresh(sub)
    return sub
