"""The send stage end to end on a real SQLite database, delivering into the outbox folder."""

from __future__ import annotations

import email
import gc
import weakref
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import StatementError
from sqlmodel import Session, select

from digest.config import Settings
from digest.deliveries import NewDelivery, insert_many, sent_papers, waiting_rows
from digest.index import shared_index
from digest.ingest import store_papers
from digest.models import Delivery, DeliveryStatus, Frequency, SubscriberStatus
from digest.parse import ParsedPaper, arxiv_urls
from digest.pipeline import preview, run_send, send_chunk
from digest.plan import plan_due
from digest.send import OutboxTransport
from digest.subscribers import unsubscribe
from tests.conftest import NOW
from tests.factories import add_papers, paper, subscriber

DAY = timedelta(days=1)
JOINED = NOW - 30 * DAY


def _outbox(settings: Settings) -> OutboxTransport:
    return OutboxTransport(settings.outbox_dir)


def _emails(folder: Path) -> dict[str, EmailMessage]:
    found = {}
    for path in sorted(folder.glob("*.eml")):
        msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        found[path.name] = msg
    return found


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content())


def _rows(session: Session) -> list[Delivery]:
    return list(session.exec(select(Delivery).order_by(Delivery.id)))  # type: ignore[arg-type]


def _seed_day(session: Session) -> None:
    seen = NOW - timedelta(hours=5)
    add_papers(
        session,
        paper(
            "2611.00001",
            "Efficient KV Cache Compression for Long Context",
            "We compress the KV cache.",
            first_seen=seen,
        ),
        paper(
            "2611.00002", "A Survey of Retrieval", "Retrieval augmented generation with a KV cache.", first_seen=seen
        ),
        paper("2611.00003", "Protein Folding at Scale", "Nothing about language models.", first_seen=seen),
    )


def test_a_due_reader_gets_one_digest_with_their_papers(session: Session, settings: Settings) -> None:
    _seed_day(session)
    subscriber(session, "ada@example.org", ['"KV cache"'], joined=JOINED)
    report = run_send(session, settings, _outbox(settings), NOW)

    assert report.counts["sent"] == 1
    (name, msg), *rest = _emails(settings.outbox_dir).items()
    assert not rest
    assert name == "ada@example.org-2026-11-30.eml"
    assert msg["To"] == "ada@example.org"
    assert msg["Subject"] == "2 new papers on KV cache — 30 Nov"
    assert msg["List-Unsubscribe"].startswith("<https://digest.example.org/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text = _text(msg)
    # Title hit ranks above the abstract-only hit; the unrelated paper is absent.
    assert text.index("Efficient KV Cache Compression") < text.index("A Survey of Retrieval")
    assert "Protein Folding" not in text
    (row,) = _rows(session)
    assert (row.status, row.period, row.paper_ids) == (DeliveryStatus.SENT, "2026-11-30", ["2611.00001", "2611.00002"])
    assert row.message_id == msg["Message-ID"]
    assert (settings.outbox_dir / "ada@example.org-2026-11-30.html").read_text().count("<html") == 1


def test_sending_twice_for_the_same_period_sends_nothing_twice(session: Session, settings: Settings) -> None:
    _seed_day(session)
    sub = subscriber(session, "ada@example.org", ["cache"], joined=JOINED)
    assert sub.id is not None
    first = send_chunk(session, settings, _outbox(settings), [sub.id], NOW)
    again = send_chunk(session, settings, _outbox(settings), [sub.id], NOW + timedelta(hours=2))
    later = run_send(session, settings, _outbox(settings), NOW + timedelta(hours=3))

    assert first.counts["sent"] == 1
    assert again.counts["sent"] == 0 and later.counts["sent"] == 0
    assert len(_rows(session)) == 1
    assert list(plan_due(session, NOW + timedelta(hours=3), 100)) == []


def test_next_digest_has_only_new_papers_never_one_twice(session: Session, settings: Settings) -> None:
    _seed_day(session)
    subscriber(session, "ada@example.org", ["cache"], joined=JOINED)
    run_send(session, settings, _outbox(settings), NOW)
    # Overnight: v2 of a paper already sent arrives from arXiv (same id, no version) and from
    # Hugging Face with upvotes; one genuinely new paper arrives too.
    later = NOW + timedelta(hours=12)
    abs_url, pdf_url = arxiv_urls("2611.00001")
    again = ParsedPaper(
        "2611.00001", "Efficient KV Cache Compression (v2)", "", [], ["cs.LG"], None, abs_url, pdf_url, 40
    )
    store_papers(session, [again], "hf-daily-papers", later)
    add_papers(session, paper("2611.00009", "Cache-Aware Decoding", first_seen=later))
    report = run_send(session, settings, _outbox(settings), NOW + DAY)

    assert report.counts["sent"] == 1
    second = _emails(settings.outbox_dir)["ada@example.org-2026-12-01.eml"]
    text = _text(second)
    assert "Cache-Aware Decoding" in text
    assert "Efficient KV Cache" not in text and "A Survey of Retrieval" not in text
    assert second["Subject"] == "1 new paper on cache — 1 Dec"


def test_no_email_when_nothing_matched(session: Session, settings: Settings) -> None:
    _seed_day(session)
    subscriber(session, "bob@example.org", ["quantum chromodynamics"], joined=JOINED)
    report = run_send(session, settings, _outbox(settings), NOW)
    assert report.counts["sent"] == 0 and report.counts["empty"] == 1
    assert _emails(settings.outbox_dir) == {}
    (row,) = _rows(session)
    assert row.status is DeliveryStatus.EMPTY
    # The empty period is settled: the next run at the same time finds nothing due.
    assert list(plan_due(session, NOW + timedelta(minutes=15), 100)) == []


def test_cap_cuts_the_list_and_says_how_many_more(session: Session, settings: Settings) -> None:
    seen = NOW - timedelta(hours=3)
    add_papers(session, *(paper(f"2611.1000{i}", f"Agent paper {i}", first_seen=seen, upvotes=i) for i in range(5)))
    subscriber(session, "cap@example.org", ["agent"], joined=JOINED, max_papers=2)
    run_send(session, settings, _outbox(settings), NOW)
    (msg,) = _emails(settings.outbox_dir).values()
    text = _text(msg)
    assert "Agent paper 4" in text and "Agent paper 3" in text  # most upvoted first
    assert "Agent paper 2" not in text
    assert "3 more papers matched your topics" in text
    assert msg["Subject"].startswith("5 new papers on agent")
    assert _rows(session)[0].more_count == 3


def test_min_upvotes_leaves_out_unknown_and_low_counts(session: Session, settings: Settings) -> None:
    seen = NOW - timedelta(hours=3)
    add_papers(
        session,
        paper("2611.20001", "Popular agent", first_seen=seen, upvotes=30),
        paper("2611.20002", "Quiet agent", first_seen=seen, upvotes=2),
        paper("2611.20003", "Unranked agent", first_seen=seen, upvotes=None),
    )
    subscriber(session, "picky@example.org", ["agent"], joined=JOINED, min_upvotes=10)
    run_send(session, settings, _outbox(settings), NOW)
    (msg,) = _emails(settings.outbox_dir).values()
    text = _text(msg)
    assert "Popular agent" in text and "▲ 30" in text
    assert "Quiet agent" not in text and "Unranked agent" not in text


def test_only_active_readers_get_mail(session: Session, settings: Settings) -> None:
    _seed_day(session)
    subscriber(session, "pending@example.org", ["cache"], joined=JOINED, status=SubscriberStatus.PENDING)
    gone = subscriber(session, "gone@example.org", ["cache"], joined=JOINED)
    unsubscribe(session, gone, NOW - DAY)
    report = run_send(session, settings, _outbox(settings), NOW)
    assert sum(report.counts.values()) == 0
    assert _emails(settings.outbox_dir) == {}


def test_unsubscribe_after_planning_is_honoured_at_claim_time(session: Session, settings: Settings) -> None:
    _seed_day(session)
    sub = subscriber(session, "late@example.org", ["cache"], joined=JOINED)
    (due,) = list(plan_due(session, NOW, 100))
    assert due == [sub.id]
    unsubscribe(session, sub, NOW)  # arrives between planning and the chunk task
    report = send_chunk(session, settings, _outbox(settings), due, NOW)
    assert report.counts["sent"] == 0
    assert _emails(settings.outbox_dir) == {}


def test_reader_in_another_time_zone_is_sent_at_their_morning(session: Session, settings: Settings) -> None:
    _seed_day(session)
    tokyo = subscriber(session, "tokyo@example.org", ["cache"], joined=JOINED, timezone="Asia/Tokyo", send_hour=8)
    la = subscriber(
        session, "la@example.org", ["cache"], joined=NOW - timedelta(hours=2), timezone="America/Los_Angeles"
    )
    # 09:00 UTC is 18:00 in Tokyo (08:00 passed) and 01:00 in Los Angeles, where the reader
    # joined after yesterday's 08:00: nothing is owed to them until their own 08:00.
    assert [ids for ids in plan_due(session, NOW, 100)] == [[tokyo.id]]
    assert [ids for ids in plan_due(session, NOW + timedelta(hours=7), 100)] == [[tokyo.id, la.id]]


def test_weekly_and_weekday_readers(session: Session, settings: Settings) -> None:
    _seed_day(session)
    weekly = subscriber(session, "w@example.org", ["cache"], joined=JOINED, frequency=Frequency.WEEKLY, weekly_day=0)
    weekdays = subscriber(session, "wd@example.org", ["cache"], joined=JOINED, frequency=Frequency.WEEKDAYS)
    run_send(session, settings, _outbox(settings), NOW)  # Monday: both get one
    periods = {(r.subscriber_id, r.period) for r in _rows(session)}
    assert periods == {(weekly.id, "2026-W49"), (weekdays.id, "2026-11-30")}
    tuesday = NOW + DAY
    add_papers(session, paper("2611.30001", "Cache again", first_seen=tuesday - timedelta(hours=2)))
    run_send(session, settings, _outbox(settings), tuesday)
    periods = {(r.subscriber_id, r.period) for r in _rows(session)}
    assert (weekdays.id, "2026-12-01") in periods
    assert sum(1 for sid, _ in periods if sid == weekly.id) == 1  # weekly waits for next Monday


def test_dry_run_records_and_sends_nothing(session: Session, settings: Settings) -> None:
    _seed_day(session)
    subscriber(session, "ada@example.org", ["cache"], joined=JOINED)
    report = run_send(session, settings, _outbox(settings), NOW, dry_run=True)
    (line,) = report.lines
    assert (line.email, line.papers, line.status) == ("ada@example.org", 2, "dry-run")
    assert line.subject == "2 new papers on cache — 30 Nov"
    assert _rows(session) == [] and not settings.outbox_dir.exists()


def test_preview_matches_what_would_be_sent(session: Session, settings: Settings) -> None:
    _seed_day(session)
    sub = subscriber(session, "ada@example.org", ["protein"], joined=JOINED)
    rendered = preview(session, settings, sub, NOW)
    assert rendered is not None
    assert rendered.subject == "1 new paper on protein — 30 Nov"
    assert "Protein Folding at Scale" in rendered.text
    assert _rows(session) == []


def test_one_broken_reader_does_not_stop_the_batch(session: Session, settings: Settings) -> None:
    _seed_day(session)
    good = subscriber(session, "good@example.org", ["cache"], joined=JOINED)
    bad = subscriber(session, "bad@example.org", ["cache"], joined=JOINED)
    bad.timezone = "Mars/Olympus_Mons"  # corrupted row: unusable schedule
    session.add(bad)
    session.commit()
    report = run_send(session, settings, _outbox(settings), NOW)
    assert report.counts["sent"] == 1
    assert [r.subscriber_id for r in _rows(session)] == [good.id]


def test_an_unsubscribe_during_the_run_stops_the_next_email(
    session: Session, settings: Settings, engine: Engine
) -> None:
    _seed_day(session)
    first = subscriber(session, "first@example.org", ["cache"], joined=JOINED)
    second = subscriber(session, "second@example.org", ["cache"], joined=JOINED)

    class UnsubscribeMidway(OutboxTransport):
        """Writes files like the outbox; after the first email, the second reader clicks unsubscribe."""

        def deliver(self, messages, report):  # type: ignore[no-untyped-def]
            def after_each(result):  # type: ignore[no-untyped-def]
                report(result)
                with Session(engine) as other:  # another process, as far as the database can tell
                    gone = other.get(type(second), second.id)
                    assert gone is not None
                    unsubscribe(other, gone, NOW)

            super().deliver(messages, after_each)

    report = send_chunk(session, settings, UnsubscribeMidway(settings.outbox_dir), [first.id, second.id], NOW)  # type: ignore[list-item]
    assert report.counts == {"sent": 1, "skipped": 1}
    assert [p.name for p in settings.outbox_dir.glob("*.eml")] == ["first@example.org-2026-11-30.eml"]
    statuses = {r.subscriber_id: r.status for r in _rows(session)}
    assert statuses == {first.id: DeliveryStatus.SENT, second.id: DeliveryStatus.SKIPPED}


def test_the_passes_index_is_set_aside_from_the_collector_and_the_one_it_replaces_is_freed(
    session: Session,
) -> None:
    _seed_day(session)
    since, popular = NOW - timedelta(days=1), NOW - timedelta(days=3)
    first = shared_index(session, since, NOW, popular)
    assert len(first.papers) == 3
    assert gc.get_freeze_count() > 0  # out of the full collections' walk
    assert shared_index(session, since, NOW, popular) is first  # the next chunk of the pass reuses it
    gone = weakref.ref(first)
    del first
    later = shared_index(session, since, NOW + timedelta(hours=1), popular)  # the next pass: a new window end
    assert gone() is None and len(later.papers) == 3  # the old index is not kept alive by being set aside


def _planned(sub_id: int, papers: list[str], *, at: datetime = NOW) -> NewDelivery:
    return NewDelivery(
        subscriber_id=sub_id, period="2026-11-30", status=DeliveryStatus.PENDING if papers else DeliveryStatus.EMPTY,
        paper_ids=papers, more_count=len(papers) // 2, window_start=at - DAY, window_end=at,
        message_id=f"<digest.{sub_id}@example.org>", created_at=at, trending_count=1 if papers else 0,
    )  # fmt: skip


def test_planned_rows_are_stored_as_given_and_a_row_already_there_wins(session: Session) -> None:
    """The recording step (on PostgreSQL one JSON document the server turns into rows, on SQLite a
    multi-row INSERT): every column as planned, the reader's topics and minimum of upvotes as they
    are now, an existing (reader, period) left alone, and only the new rows reported."""
    ada = subscriber(session, "ada@example.org", ['"kv cache"', 'title:"long context"'], joined=JOINED, min_upvotes=3)
    bob = subscriber(session, "bob@example.org", ["retrieval"], joined=JOINED)
    assert ada.id is not None and bob.id is not None
    assert insert_many(session, [_planned(ada.id, ["2611.00001", "2611.00002"])]) == {ada.id}
    session.commit()
    again = [_planned(ada.id, ["2611.00009"]), _planned(bob.id, [])]
    assert insert_many(session, again) == {bob.id}  # ada's row was there: hers is kept as it was
    session.commit()
    first, second = _rows(session)
    assert (first.subscriber_id, first.period, first.status) == (ada.id, "2026-11-30", DeliveryStatus.PENDING)
    assert first.paper_ids == ["2611.00001", "2611.00002"] and first.topics == ['"kv cache"', 'title:"long context"']
    assert (first.more_count, first.trending_count, first.recommended_count, first.min_upvotes) == (1, 1, 0, 3)
    assert (first.window_start, first.window_end, first.created_at) == (NOW - DAY, NOW, NOW)
    assert first.message_id == f"<digest.{ada.id}@example.org>" and first.attempts == 0
    assert (first.error, first.due_at, first.claimed_at, first.sent_at) == (None, None, None, None)
    assert (second.status, second.paper_ids, second.topics, second.min_upvotes) == (
        DeliveryStatus.EMPTY, [], ["retrieval"], None,
    )  # fmt: skip
    # The queries over a chunk's readers (an array parameter on PostgreSQL) find exactly theirs.
    assert [(row_id, sid) for row_id, sid, _ in waiting_rows(session, [ada.id, bob.id + 100], NOW)] == [
        (first.id, ada.id)
    ]
    assert sent_papers(session, [ada.id, bob.id], NOW - 2 * DAY) == {ada.id: {"2611.00001", "2611.00002"}}
    with pytest.raises((ValueError, StatementError), match="naive datetime"):  # SQLAlchemy wraps it on SQLite
        insert_many(session, [_planned(bob.id + 1, ["2611.00001"], at=NOW.replace(tzinfo=None))])
