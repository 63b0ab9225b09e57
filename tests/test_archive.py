"""The archive: what a send run records for it (the reader's topics and minimum on each row, a
feed-only reader's digests filed for the feed and never mailed), each digest rebuilt as sent with
the papers the cap cut, the signed links that open it and the feed, paging, and the daily clean-up
that removes old digests and nothing else."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from digest import archive
from digest.cli import app
from digest.config import Settings
from digest.index import load_index
from digest.models import (
    Delivery,
    DeliveryStatus,
    Notice,
    NoticeKind,
    Paper,
    Subscriber,
    SubscriberStatus,
    Suppression,
    Vote,
)
from digest.pipeline import run_send
from digest.plan import popular_reach
from digest.send import OutboxTransport
from digest.signup import LinkError
from digest.tokens import Purpose, make_token
from tests.conftest import NOW
from tests.factories import add_papers, paper, subscriber

DAY = timedelta(days=1)
JOINED = NOW - 30 * DAY
LOOKBACK = timedelta(days=7)
# Five papers on agents, seen this morning: by hits (title first), then upvotes, they rank 1..5.
AGENT_PAPERS = [
    ("2611.20001", "Agents for agents: tool-using agents", "Agents and agents.", 9),
    ("2611.20002", "Agents that plan", "Planning agents.", 8),
    ("2611.20003", "Tool use by agents", "A study.", 7),
    ("2611.20004", "Memory for language models", "We give agents memory.", 6),
    ("2611.20005", "Benchmarks", "Agents, measured.", 5),
]


def _seed(session: Session) -> None:
    seen = NOW - timedelta(hours=5)
    rows = [paper(pid, title, abstract, first_seen=seen, upvotes=votes) for pid, title, abstract, votes in AGENT_PAPERS]
    add_papers(session, *rows, paper("2611.29999", "Protein folding", "Biology.", first_seen=seen))


def _send(session: Session, settings: Settings, now: object = NOW) -> None:
    run_send(session, settings, OutboxTransport(settings.outbox_dir), now)  # type: ignore[arg-type]


def _rows(session: Session, sub: Subscriber) -> list[Delivery]:
    query = select(Delivery).where(Delivery.subscriber_id == sub.id).order_by(col(Delivery.id))
    return list(session.exec(query))


def _window(session: Session, settings: Settings) -> archive.WindowIndex:
    def index(row: Delivery) -> object:
        since = row.window_start - popular_reach(settings)
        return load_index(session, row.window_start, row.window_end, popular_since=since)

    return index  # type: ignore[return-value]


def test_each_row_keeps_the_topics_and_minimum_it_was_composed_with(session: Session, settings: Settings) -> None:
    _seed(session)
    sub = subscriber(session, "ada@example.org", ["agents", "memory"], joined=JOINED, min_upvotes=3, max_papers=2)
    _send(session, settings)
    [row] = _rows(session, sub)
    assert (row.topics, row.min_upvotes, row.status) == (["agents", "memory"], 3, DeliveryStatus.SENT)
    assert (len(row.paper_ids), row.more_count) == (2, 3)


def test_a_digest_as_sent_with_the_papers_the_cap_cut(session: Session, settings: Settings) -> None:
    _seed(session)
    sub = subscriber(session, "ada@example.org", ["agents"], joined=JOINED, max_papers=2)
    _send(session, settings)
    [row] = _rows(session, sub)
    assert row.paper_ids == ["2611.20001", "2611.20002"] and row.more_count == 3
    sub.topics = ["protein"]  # changed since: the page still shows the digest as it was sent
    session.add(sub)
    session.commit()
    sent = archive.sent_digest(session, sub, row, semantics=None, window=_window(session, settings), lookback=LOOKBACK)
    assert [m.paper.id for m in sent.matches] == ["2611.20001", "2611.20002"]
    assert all(m.topics == ("agents",) for m in sent.matches)
    assert [m.paper.id for m in sent.cut] == ["2611.20003", "2611.20004", "2611.20005"]
    assert sent.topics == ["agents"]


def test_the_cut_leaves_out_what_an_earlier_digest_carried(session: Session, settings: Settings) -> None:
    _seed(session)
    sub = subscriber(session, "ada@example.org", ["agents"], joined=JOINED, max_papers=1)
    _send(session, settings)
    [row] = _rows(session, sub)
    # As if a digest before this one (its window ended earlier) had carried 2611.20003 already.
    earlier = Delivery(
        subscriber_id=sub.id or 0, period="2026-11-29", status=DeliveryStatus.SENT, paper_ids=["2611.20003"],
        window_start=row.window_start - DAY, window_end=row.window_start, created_at=NOW - DAY,
    )  # fmt: skip
    session.add(earlier)
    session.commit()
    sent = archive.sent_digest(session, sub, row, semantics=None, window=_window(session, settings), lookback=LOOKBACK)
    assert [m.paper.id for m in sent.cut] == ["2611.20002", "2611.20004", "2611.20005"][: row.more_count]


def test_a_digest_the_cap_did_not_cut_never_reads_its_window(session: Session, settings: Settings) -> None:
    _seed(session)
    sub = subscriber(session, "ada@example.org", ["memory"], joined=JOINED)
    _send(session, settings)
    [row] = _rows(session, sub)

    def never(_row: Delivery) -> object:
        raise AssertionError("the window was read")

    sent = archive.sent_digest(session, sub, row, semantics=None, window=never, lookback=LOOKBACK)  # type: ignore[arg-type]
    assert [m.paper.id for m in sent.matches] == ["2611.20004"] and sent.cut == []


def test_a_feed_only_reader_is_never_mailed_but_their_digest_is_recorded(session: Session, settings: Settings) -> None:
    _seed(session)
    sub = subscriber(session, "ada@example.org", ["agents"], joined=JOINED)
    other = subscriber(session, "grace@example.org", ["agents"], joined=JOINED)
    archive.set_feed_only(session, sub, True)
    report = run_send(session, settings, OutboxTransport(settings.outbox_dir), NOW)
    assert (report.counts["feed"], report.counts["sent"]) == (1, 1)  # what `digest send` reports
    mailed = sorted(p.name for p in settings.outbox_dir.glob("*.eml"))
    assert len(mailed) == 1 and mailed[0].startswith("grace")
    [row] = _rows(session, sub)
    assert row.status is DeliveryStatus.FEED and row.sent_at == NOW and len(row.paper_ids) == 5
    assert _rows(session, other)[0].status is DeliveryStatus.SENT
    # What the feed got counts as sent: the next digest never repeats it, and it is in the archive.
    assert [r.id for r in archive.past_digests(session, sub).rows] == [row.id]
    archive.set_feed_only(session, sub, False)
    add_papers(session, paper("2611.20100", "Agents again", "More agents.", first_seen=NOW + timedelta(hours=5)))
    _send(session, settings, NOW + DAY)
    newer = _rows(session, sub)[-1]
    assert newer.status is DeliveryStatus.SENT and newer.paper_ids == ["2611.20100"]


def test_an_unsubscribed_reader_cannot_choose_feed_only(session: Session) -> None:
    sub = subscriber(session, "ada@example.org", ["agents"], joined=JOINED, status=SubscriberStatus.UNSUBSCRIBED)
    with pytest.raises(LinkError):
        archive.set_feed_only(session, sub, True)


def _digest(session: Session, sub: Subscriber, days_ago: float, status: DeliveryStatus) -> Delivery:
    created = NOW - timedelta(days=days_ago)
    row = Delivery(
        subscriber_id=sub.id or 0, period=f"{created:%Y-%m-%d}.{uuid.uuid4().hex[:5]}", status=status,
        paper_ids=["2611.20001"], window_start=created - DAY, window_end=created, created_at=created,
    )  # fmt: skip
    session.add(row)
    session.commit()
    session.refresh(row)
    return row


def test_the_archive_is_paged_newest_first_and_lists_only_what_was_sent(session: Session) -> None:
    sub = subscriber(session, "ada@example.org", ["agents"], joined=NOW - 60 * DAY)
    kept = [_digest(session, sub, n, DeliveryStatus.SENT if n % 2 else DeliveryStatus.FEED) for n in range(1, 24)]
    for status in (DeliveryStatus.EMPTY, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.PENDING):
        _digest(session, sub, 0.5, status)
    pages = [archive.past_digests(session, sub, n) for n in (1, 2, 3, 4)]
    assert [[r.id for r in p.rows] for p in pages] == [
        [r.id for r in kept[:10]], [r.id for r in kept[10:20]], [r.id for r in kept[20:]], []
    ]  # fmt: skip
    assert [p.has_next for p in pages] == [True, True, False, False]
    assert archive.past_digests(session, sub, 0).page == 1


def _count(session: Session, table: type) -> int:
    return int(session.execute(sa_select(func.count()).select_from(table)).scalar_one())


def test_the_daily_clean_up_removes_old_digests_and_nothing_else(session: Session, settings: Settings) -> None:
    _seed(session)
    sub = subscriber(session, "ada@example.org", ["agents"], joined=NOW - 200 * DAY)
    other = subscriber(session, "grace@example.org", ["agents"], joined=NOW - 200 * DAY)
    old = [_digest(session, s, days, status) for s in (sub, other) for days, status in
           ((91, DeliveryStatus.SENT), (120, DeliveryStatus.EMPTY), (95, DeliveryStatus.FEED))]  # fmt: skip
    young = [_digest(session, sub, 89, DeliveryStatus.SENT), _digest(session, other, 1, DeliveryStatus.UNKNOWN)]
    stuck = _digest(session, sub, 100, DeliveryStatus.PENDING)  # the sweeper's business, not the archive's
    session.add(Vote(subscriber_id=sub.id or 0, paper_id="2611.20001", value=1, created_at=NOW - 150 * DAY))
    session.add(Notice(subscriber_id=sub.id or 0, kind=NoticeKind.ALREADY, created_at=NOW - 150 * DAY))
    session.add(Suppression(address_hash="ab" * 32, reason="hard bounce", created_at=NOW - 150 * DAY))
    session.commit()
    others = {table: _count(session, table) for table in (Paper, Subscriber, Vote, Notice, Suppression)}
    assert archive.remove_old(session, NOW, timedelta(days=settings.archive_days)) == len(old)
    left = {r.id for r in session.exec(select(Delivery))}
    assert left == {r.id for r in [*young, stuck]}
    assert {table: _count(session, table) for table in others} == others
    assert archive.remove_old(session, NOW, timedelta(days=90)) == 0  # safe to run twice


def test_the_daily_task_runs_both_clean_ups(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import tasks

    sub = subscriber(session, "ada@example.org", ["agents"], joined=NOW - 200 * DAY)
    _digest(session, sub, 200, DeliveryStatus.SENT)
    monkeypatch.setattr(tasks, "_settings", lambda: settings)
    monkeypatch.setattr(tasks, "_engine", lambda: session.get_bind())
    assert tasks.cleanup_pending_task() == {"pending": 0, "digests": 1}


# --- links -------------------------------------------------------------------------------------------


def test_a_view_link_opens_its_readers_digest_and_nothing_else(session: Session, settings: Settings) -> None:
    sub = subscriber(session, "ada@example.org", ["agents"], joined=NOW - 60 * DAY)
    other = subscriber(session, "grace@example.org", ["agents"], joined=NOW - 60 * DAY)
    row = _digest(session, sub, 2, DeliveryStatus.SENT)
    theirs = _digest(session, other, 2, DeliveryStatus.SENT)
    empty = _digest(session, sub, 3, DeliveryStatus.EMPTY)
    token = archive.view_url(settings, sub, row.id or 0, NOW).rsplit("/", 1)[1]
    assert archive.viewed_digest(session, settings, token, NOW) == (sub, row)
    keys = settings.signing_keys
    refused = {
        "another reader's digest": make_token(keys, Purpose.VIEW, sub.handle, theirs.id, now=NOW),
        "a digest that sent nothing": make_token(keys, Purpose.VIEW, sub.handle, empty.id, now=NOW),
        "no such digest": make_token(keys, Purpose.VIEW, sub.handle, 999_999, now=NOW),
        "no such reader": make_token(keys, Purpose.VIEW, "no-such-handle", row.id, now=NOW),
        "a manage token": make_token(keys, Purpose.MANAGE, sub.handle, now=NOW),
        "another key": make_token(["another-key"], Purpose.VIEW, sub.handle, row.id, now=NOW),
        "older than the archive": make_token(keys, Purpose.VIEW, sub.handle, row.id, now=NOW - 91 * DAY),
    }
    for why, bad in refused.items():
        with pytest.raises(LinkError):
            archive.viewed_digest(session, settings, bad, NOW)
            pytest.fail(why)


def test_a_reset_kills_the_old_feed_address_and_older_view_links(session: Session, settings: Settings) -> None:
    sub = subscriber(session, "ada@example.org", ["agents"], joined=NOW - 60 * DAY)
    row = _digest(session, sub, 2, DeliveryStatus.SENT)
    old_feed = archive.feed_url(settings, sub).rsplit("/", 1)[1]
    assert archive.feed_url(settings, sub).endswith(old_feed)  # the same address every time it is shown
    old_view = archive.view_url(settings, sub, row.id or 0, NOW - DAY).rsplit("/", 1)[1]
    assert archive.feed_reader(session, settings, old_feed, NOW) == sub
    archive.reset_feed(session, sub, NOW)
    new_feed = archive.feed_url(settings, sub).rsplit("/", 1)[1]
    new_view = archive.view_url(settings, sub, row.id or 0, NOW).rsplit("/", 1)[1]
    assert new_feed != old_feed
    for dead, read in ((old_feed, archive.feed_reader), (old_view, archive.viewed_digest)):
        with pytest.raises(LinkError):
            read(session, settings, dead, NOW + DAY)
    assert archive.feed_reader(session, settings, new_feed, NOW + DAY) == sub
    assert archive.viewed_digest(session, settings, new_view, NOW + DAY) == (sub, row)
    archive.reset_feed(session, sub, NOW)  # twice at the same moment: still a new address
    assert archive.feed_url(settings, sub).rsplit("/", 1)[1] != new_feed


@pytest.mark.parametrize("status", [SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.PENDING])
def test_the_feed_answers_only_while_subscribed(session: Session, settings: Settings, status: SubscriberStatus) -> None:
    sub = subscriber(session, "ada@example.org", ["agents"], joined=NOW - 60 * DAY, status=status)
    token = archive.feed_url(settings, sub).rsplit("/", 1)[1]
    with pytest.raises(LinkError):
        archive.feed_reader(session, settings, token, NOW)


def test_digest_cleanup_removes_old_digests_as_the_daily_task_does(session: Session, settings: Settings) -> None:
    sub = subscriber(session, "ada@example.org", ["agents"], joined=NOW - 200 * DAY)
    _digest(session, sub, 120, DeliveryStatus.SENT)
    young = _digest(session, sub, 3, DeliveryStatus.SENT).id
    env = {"DIGEST_DATABASE_URL": settings.database_url, "DIGEST_SOURCES": "[]", "DIGEST_SECRET_KEY": "cli-secret"}
    result = CliRunner().invoke(app, ["cleanup", "--now", NOW.isoformat()], env=env)
    assert result.exit_code == 0, result.output
    assert "0 unconfirmed sign-ups forgotten, 1 archived digests removed" in result.output
    session.expire_all()
    assert [r.id for r in session.exec(select(Delivery))] == [young]
