"""All tables. The database is the source of truth; Celery messages only prompt work."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Dialect, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy import Enum as SAEnum
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (which keeps no zone) as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _json_list() -> Column:  # type: ignore[type-arg]
    return Column(JSON, nullable=False, default=list)


def _enum(cls: type[StrEnum], index: bool = False) -> Column:  # type: ignore[type-arg]
    """An enum stored as its plain value in a VARCHAR (no database enum type: adding a state needs
    no migration, and `status = 'sent'` reads naturally in SQL)."""
    kind = SAEnum(cls, native_enum=False, length=16, validate_strings=True, values_callable=_values)
    return Column(kind, nullable=False, index=index)


def _values(cls: type[StrEnum]) -> list[str]:
    return [member.value for member in cls]


def _utc_column(nullable: bool = True, index: bool = False) -> Column:  # type: ignore[type-arg]
    return Column(UtcDateTime(), nullable=nullable, index=index)


class Paper(SQLModel, table=True):
    """One paper, keyed by its arXiv id without version wherever it has one."""

    id: str = Field(sa_column=Column(String(512), primary_key=True))
    title: str = Field(sa_column=Column(Text, nullable=False))
    authors: list[str] = Field(default_factory=list, sa_column=_json_list())
    abstract: str = Field(default="", sa_column=Column(Text, nullable=False))
    categories: list[str] = Field(default_factory=list, sa_column=_json_list())
    published: datetime | None = Field(default=None, sa_column=_utc_column())
    abs_url: str = Field(default="", sa_column=Column(Text, nullable=False))
    pdf_url: str | None = Field(default=None, sa_column=Column(Text))
    upvotes: int | None = None
    # Each time the count rose above every count seen before: [count, unix seconds of that fetch].
    # A reader's minimum is met at the first entry reaching it (`match.PaperRecord.reached`).
    upvote_history: list[list[int]] = Field(default_factory=list, sa_column=_json_list())
    on_hf: bool = False  # Hugging Face Daily Papers announced it: it has a page there
    # Announced by Hugging Face with no arXiv description yet: its categories and full author list
    # are asked of the arXiv API on the next fetch run (`digest.enrich`).
    needs_arxiv: bool = Field(default=False, index=True)
    sources: list[str] = Field(default_factory=list, sa_column=_json_list())
    # True once arXiv or Hugging Face described the paper; until then a generic feed's text stands in.
    authoritative: bool = True
    first_seen: datetime = Field(sa_column=_utc_column(nullable=False, index=True))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))
    # The title-and-abstract vector (`digest.embed`: float16 little-endian bytes) and the model that
    # made it; None until embedded, and until then the paper is matched by its words only.
    embedding: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    embedding_model: str | None = Field(default=None, sa_column=Column(String(64), index=True))


class SourceState(SQLModel, table=True):
    """What we remember about fetching one source: validators, health and back-off."""

    name: str = Field(primary_key=True, max_length=200)
    validators_url: str | None = Field(default=None, sa_column=Column(Text))
    etag: str | None = None
    last_modified: str | None = None
    last_attempt: datetime | None = Field(default=None, sa_column=_utc_column())
    last_success: datetime | None = Field(default=None, sa_column=_utc_column())
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    consecutive_failures: int = 0
    not_before: datetime | None = Field(default=None, sa_column=_utc_column())
    papers_last_run: int = 0
    papers_total: int = 0  # new papers ever ingested from this source (a Prometheus counter)
    failures_total: int = 0  # failed runs ever


class SubscriberStatus(StrEnum):
    PENDING = "pending"  # signed up, not confirmed: never gets a digest
    ACTIVE = "active"
    PAUSED = "paused"  # confirmed, digests on hold until resumed
    UNSUBSCRIBED = "unsubscribed"
    SUPPRESSED = "suppressed"  # the address hard-bounced: never mailed again


class Frequency(StrEnum):
    DAILY = "daily"
    WEEKDAYS = "weekdays"
    WEEKLY = "weekly"


@dataclass(frozen=True)
class Preferences:
    """What a reader chooses: topics and schedule. These defaults are the only ones: the sign-up
    form, the API, the CLI and the subscriber table all take theirs from `DEFAULT_PREFERENCES`."""

    topics: Sequence[str] = ()
    frequency: Frequency = Frequency.DAILY
    send_hour: int = 8
    timezone: str = "UTC"
    weekly_day: int = 0  # Monday; only used by the weekly frequency
    min_upvotes: int | None = None
    max_papers: int = 25
    # The top N papers of the period on Hugging Face by upvotes; None: no trending section. A
    # subscription with no topics is a trending one (`subscribers.check_preferences`).
    trending: int | None = None


DEFAULT_PREFERENCES = Preferences()
TRENDING_DEFAULT = 10  # papers in the trending section when the reader does not say
TRENDING_MAX = 50


def new_handle() -> str:
    """A random, opaque name for a subscriber: what link tokens carry (never the row id)."""
    return secrets.token_urlsafe(12)


class Subscriber(SQLModel, table=True):
    """A reader: address, topics and when they want their digest."""

    __table_args__ = (UniqueConstraint("handle", name="uq_subscriber_handle"),)

    id: int | None = Field(default=None, primary_key=True)
    handle: str = Field(default_factory=new_handle, sa_column=Column(String(32), nullable=False))
    email: str = Field(sa_column=Column(String(320), nullable=False, unique=True))
    status: SubscriberStatus = Field(default=SubscriberStatus.PENDING, sa_column=_enum(SubscriberStatus, index=True))
    topics: list[str] = Field(default_factory=list, sa_column=_json_list())
    frequency: Frequency = Field(default=DEFAULT_PREFERENCES.frequency, sa_column=_enum(Frequency))
    send_hour: int = DEFAULT_PREFERENCES.send_hour
    timezone: str = DEFAULT_PREFERENCES.timezone
    weekly_day: int = DEFAULT_PREFERENCES.weekly_day
    min_upvotes: int | None = DEFAULT_PREFERENCES.min_upvotes
    max_papers: int = DEFAULT_PREFERENCES.max_papers
    trending: int | None = DEFAULT_PREFERENCES.trending
    # Feed only: the send run records the reader's digests for their feed and archive, mails none.
    feed_only: bool = False
    # When the reader last reset their feed address: older feed and view-in-browser links are dead.
    feed_reset_at: datetime | None = Field(default=None, sa_column=_utc_column())

    @property
    def preferences(self) -> Preferences:
        """The reader's topics and schedule as a plain value."""
        return Preferences(
            list(self.topics), Frequency(self.frequency), self.send_hour, self.timezone,
            self.weekly_day, self.min_upvotes, self.max_papers, self.trending,
        )  # fmt: skip

    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    confirmed_at: datetime | None = Field(default=None, sa_column=_utc_column())
    unsubscribed_at: datetime | None = Field(default=None, sa_column=_utc_column())
    # When the last confirmation link was issued: only a link carrying this stamp confirms.
    requested_at: datetime | None = Field(default=None, sa_column=_utc_column())


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # composed, not yet claimed by a sender
    CLAIMED = "claimed"  # claimed by a sender; nothing of it on the wire yet
    SENDING = "sending"  # in flight: marked right before its MAIL FROM
    SENT = "sent"  # the relay answered 250
    RETRY = "retry"  # temporary failure before the message was handed over
    FAILED = "failed"  # permanent failure (5xx)
    UNKNOWN = "unknown"  # failed after the body went out: never resent automatically
    EMPTY = "empty"  # nothing matched this period: no email
    SKIPPED = "skipped"  # the subscriber left or was suppressed before the send
    FEED = "feed"  # a feed-only reader's digest: recorded for their feed and archive, never mailed


class Delivery(SQLModel, table=True):
    """One digest per (subscriber, period): the unique constraint makes every send idempotent."""

    __table_args__ = (
        UniqueConstraint("subscriber_id", "period", name="uq_delivery_subscriber_period"),
        Index("ix_delivery_status_due", "status", "due_at"),
        Index("ix_delivery_created_at", "created_at"),  # the archive's daily clean-up
    )

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    period: str = Field(max_length=16)
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, sa_column=_enum(DeliveryStatus))
    paper_ids: list[str] = Field(default_factory=list, sa_column=_json_list())
    more_count: int = 0
    # The first `trending_count` of `paper_ids` are the trending section, in rank order; the last
    # `recommended_count` the "recommended for you" section (papers no topic matched).
    trending_count: int = 0
    recommended_count: int = 0
    # The reader's topics and minimum of upvotes when it was composed: the archive shows the digest
    # as sent (why each paper matched, and which papers the cap cut) after the reader changes them.
    topics: list[str] = Field(default_factory=list, sa_column=_json_list())
    min_upvotes: int | None = None
    window_start: datetime = Field(sa_column=_utc_column(nullable=False))
    window_end: datetime = Field(sa_column=_utc_column(nullable=False))
    message_id: str = Field(default="", max_length=300)
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    due_at: datetime | None = Field(default=None, sa_column=_utc_column())
    claimed_at: datetime | None = Field(default=None, sa_column=_utc_column())
    sent_at: datetime | None = Field(default=None, sa_column=_utc_column())


class NoticeKind(StrEnum):
    CONFIRM = "confirm"  # "confirm your subscription" (double opt-in)
    ALREADY = "already"  # someone asked to subscribe an address that already is: here is its manage link


class Notice(SQLModel, table=True):
    """A transactional email waiting to go out: queued by the web app, sent by a worker, never inline."""

    __table_args__ = (Index("ix_notice_status_due", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    kind: NoticeKind = Field(sa_column=_enum(NoticeKind))
    status: DeliveryStatus = Field(default=DeliveryStatus.PENDING, sa_column=_enum(DeliveryStatus))
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(sa_column=_utc_column(nullable=False, index=True))
    due_at: datetime | None = Field(default=None, sa_column=_utc_column())
    claimed_at: datetime | None = Field(default=None, sa_column=_utc_column())
    sent_at: datetime | None = Field(default=None, sa_column=_utc_column())


class Vote(SQLModel, table=True):
    """A reader's "more like this" (+1) or "less like this" (-1) on one paper, from their digest.
    The reader's own data: never shown to anyone else, never in metrics, gone with "forget me"."""

    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id", name="uq_vote_subscriber_paper"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    paper_id: str = Field(sa_column=Column(String(512), nullable=False))
    value: int  # +1 more like this, -1 less like this
    topic: str | None = Field(default=None, sa_column=Column(Text))  # the topic the paper matched, if one
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class ReaderModel(SQLModel, table=True):
    """A reader's learned ranking: logistic-regression weights over paper embeddings, trained by a
    worker from their votes (never in a web request)."""

    subscriber_id: int = Field(foreign_key="subscriber.id", primary_key=True)
    embedding_model: str = Field(sa_column=Column(String(64), nullable=False))
    weights: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # float32 little-endian, dim + 1 (bias)
    votes: int = 0  # how many votes it was trained on
    trained_at: datetime = Field(sa_column=_utc_column(nullable=False))


class TextVector(SQLModel, table=True):
    """The vector of a text a reader described a topic with (`like:"…"`), by the text's sha256:
    embedded once per model, read by every send run after."""

    embedding_model: str = Field(sa_column=Column(String(64), primary_key=True))
    text_hash: str = Field(sa_column=Column(String(64), primary_key=True))
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))  # as Paper.embedding
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class Suppression(SQLModel, table=True):
    """Addresses never to mail again (hard bounces, "forget me"), kept only as a hash."""

    address_hash: str = Field(primary_key=True, max_length=64)
    reason: str = Field(max_length=200)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False, index=True))
