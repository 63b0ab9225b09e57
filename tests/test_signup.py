"""Sign-up, confirmation, pause/resume and clean-up in the core, and the queued emails they send."""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, select

from digest.compose import links
from digest.config import Settings, parse_smtp_url
from digest.db import open_session
from digest.models import DeliveryStatus, Frequency, Notice, NoticeKind, Preferences, Subscriber, SubscriberStatus
from digest.notices import send_notices
from digest.pipeline import run_send
from digest.send import OutboxTransport, SmtpTransport
from digest.signup import (
    LinkError,
    Requested,
    cleanup_pending,
    confirm,
    confirm_url,
    request_new_link,
    request_signup,
    set_paused,
    subscriber_for,
)
from digest.subscribers import SubscriberError, check_preferences, unsubscribe
from digest.suppress import forget, suppress
from digest.tokens import Purpose, TokenError, _b64, _compact_tag, _serializer, _unb64, make_token, read_token
from tests.conftest import NOW
from tests.factories import add_papers, paper, subscriber
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401

PREFS = Preferences(['"KV cache"', "agents"], Frequency.DAILY, 8, "Europe/Paris")
HOUR = timedelta(hours=1)


def _token(url: str) -> str:
    return url.rsplit("/", 1)[1]


def _notices(session: Session) -> list[Notice]:
    session.expire_all()
    return list(session.exec(select(Notice).order_by(Notice.id)))  # type: ignore[arg-type]


def _sub(session: Session, email_address: str) -> Subscriber:
    session.expire_all()
    found = session.exec(select(Subscriber).where(Subscriber.email == email_address)).one()
    return found


def test_new_address_becomes_pending_with_one_confirmation(session: Session, settings: Settings) -> None:
    result = request_signup(session, settings, "  Ada@Example.ORG ", PREFS, NOW)
    assert result.outcome is Requested.CONFIRMATION_QUEUED
    sub = _sub(session, "ada@example.org")
    assert (sub.status, sub.topics, sub.timezone, sub.requested_at) == (
        SubscriberStatus.PENDING, ['"KV cache"', "agents"], "Europe/Paris", NOW,
    )  # fmt: skip
    assert [(n.kind, n.status) for n in _notices(session)] == [(NoticeKind.CONFIRM, DeliveryStatus.PENDING)]


@pytest.mark.parametrize(
    ("address", "prefs", "message"),
    [
        ("not an address", PREFS, "is not a valid email address"),
        ("ada@example.org\r\nBcc: x@example.org", PREFS, "line breaks"),
        ("ada@example.org", Preferences(['"unclosed']), "column 1: this quote is never closed"),
        ("ada@example.org", Preferences(["agents"], timezone="Moon/Base"), "unknown time zone"),
        ("ada@example.org", Preferences([], trending=0), "trending papers per email must be between 1 and 50"),
        ("ada@example.org", Preferences(["agents"], trending=51), "trending papers per email must be between 1 and 50"),
    ],
)
def test_invalid_sign_ups_store_nothing(
    session: Session, settings: Settings, address: str, prefs: Preferences, message: str
) -> None:
    with pytest.raises(SubscriberError, match=message):
        request_signup(session, settings, address, prefs, NOW)
    assert session.exec(select(Subscriber)).all() == []
    assert _notices(session) == []


def test_each_state_gets_the_right_email_at_most_once_a_day(session: Session, settings: Settings) -> None:
    request_signup(session, settings, "p@example.org", PREFS, NOW)
    assert request_signup(session, settings, "p@example.org", PREFS, NOW + HOUR).outcome is Requested.COOLING_DOWN
    later = request_signup(session, settings, "p@example.org", PREFS, NOW + 25 * HOUR)
    assert later.outcome is Requested.CONFIRMATION_QUEUED

    request_signup(session, settings, "a@example.org", PREFS, NOW)
    confirm(session, settings, _token(confirm_url(settings, _sub(session, "a@example.org"), NOW)), NOW)
    # A confirmed reader's settings never change on a stranger's word: they get a note instead.
    other = Preferences(["something else"])
    assert (
        request_signup(session, settings, "a@example.org", other, NOW + 25 * HOUR).outcome is Requested.REMINDER_QUEUED
    )
    assert _sub(session, "a@example.org").topics == ['"KV cache"', "agents"]

    kinds = [(n.subscriber_id, n.kind) for n in _notices(session)]
    p, a = _sub(session, "p@example.org").id, _sub(session, "a@example.org").id
    assert kinds == [(p, NoticeKind.CONFIRM), (p, NoticeKind.CONFIRM), (a, NoticeKind.CONFIRM), (a, NoticeKind.ALREADY)]


def test_confirmation_links_tampered_expired_replayed_or_for_another_purpose(
    session: Session, settings: Settings
) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    sub = _sub(session, "ada@example.org")
    first = _token(confirm_url(settings, sub, NOW))
    manage, leave = (_token(u) for u in links(settings, sub, NOW))
    for bad in (first[:-2] + ("AA" if not first.endswith("AA") else "BB"), manage, leave, "x" * 600, ""):
        with pytest.raises(LinkError):
            confirm(session, settings, bad, NOW)
    # A newer request (after the cooldown) replaces the link: the first one no longer works.
    request_signup(session, settings, "ada@example.org", PREFS, NOW + 25 * HOUR)
    second = _token(confirm_url(settings, _sub(session, "ada@example.org"), NOW))
    with pytest.raises(LinkError, match="superseded"):
        confirm(session, settings, first, NOW)
    # Expired: the same link checked after its lifetime, which counts from the request.
    with pytest.raises(LinkError, match="expired"):
        confirm(session, settings, second, NOW + 25 * HOUR + settings.confirm_link_hours * HOUR + timedelta(seconds=5))
    assert confirm(session, settings, second, NOW + 26 * HOUR).status is SubscriberStatus.ACTIVE
    assert confirm(session, settings, second, NOW + 26 * HOUR).status is SubscriberStatus.ACTIVE  # idempotent


def test_a_confirm_link_cannot_bring_back_someone_who_left(session: Session, settings: Settings) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    token = _token(confirm_url(settings, _sub(session, "ada@example.org"), NOW))
    confirm(session, settings, token, NOW)
    unsubscribe(session, _sub(session, "ada@example.org"), NOW + HOUR)
    with pytest.raises(LinkError):
        confirm(session, settings, token, NOW + 2 * HOUR)
    assert _sub(session, "ada@example.org").status is SubscriberStatus.UNSUBSCRIBED


def test_tokens_survive_key_rotation(session: Session, settings: Settings) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    sub = _sub(session, "ada@example.org")
    manage = _token(links(settings, sub, NOW)[0])
    rotated = settings.model_copy(update={"secret_key": "new-key", "old_secret_keys": [settings.secret_key]})
    assert subscriber_for(session, rotated, Purpose.MANAGE, manage, now=NOW).id == sub.id
    forgotten = settings.model_copy(update={"secret_key": "new-key", "old_secret_keys": []})
    with pytest.raises(LinkError):
        subscriber_for(session, forgotten, Purpose.MANAGE, manage, now=NOW)


def test_pause_holds_digests_and_resume_does_not_flood(session: Session, settings: Settings) -> None:
    request_signup(session, settings, "ada@example.org", Preferences(["cache"], send_hour=8), NOW - 10 * 24 * HOUR)
    confirm(
        session, settings, _token(confirm_url(settings, _sub(session, "ada@example.org"), NOW)), NOW - 10 * 24 * HOUR
    )
    outbox = OutboxTransport(settings.outbox_dir)
    add_papers(session, paper("2611.50001", "Cache one", first_seen=NOW - 3 * HOUR))
    assert run_send(session, settings, outbox, NOW).counts["sent"] == 1
    set_paused(session, _sub(session, "ada@example.org"), True, NOW + HOUR)
    add_papers(session, paper("2611.50002", "Cache while away", first_seen=NOW + 2 * HOUR))
    assert sum(run_send(session, settings, outbox, NOW + 24 * HOUR).counts.values()) == 0
    # Five days later the reader resumes: the next digest covers one period, not the whole pause.
    resume_at = NOW + 5 * 24 * HOUR + 10 * HOUR
    set_paused(session, _sub(session, "ada@example.org"), False, resume_at)
    add_papers(session, paper("2611.50003", "Cache after resuming", first_seen=resume_at + HOUR))
    report = run_send(session, settings, outbox, resume_at + 23 * HOUR)
    assert report.counts["sent"] == 1
    last = sorted(settings.outbox_dir.glob("*.eml"))[-1].read_text()
    assert "Cache after resuming" in last and "Cache while away" not in last


def test_cleanup_forgets_unconfirmed_and_reverts_returning(session: Session, settings: Settings) -> None:
    request_signup(session, settings, "never@example.org", PREFS, NOW)
    request_signup(session, settings, "back@example.org", PREFS, NOW)
    confirm(session, settings, _token(confirm_url(settings, _sub(session, "back@example.org"), NOW)), NOW)
    unsubscribe(session, _sub(session, "back@example.org"), NOW + HOUR)
    request_signup(session, settings, "back@example.org", PREFS, NOW + 30 * HOUR)  # returns, never confirms
    request_signup(session, settings, "fresh@example.org", PREFS, NOW + 7 * 24 * HOUR)
    dropped = cleanup_pending(session, NOW + 9 * 24 * HOUR, timedelta(days=7))
    assert dropped == 2
    emails = {s.email: s.status for s in session.exec(select(Subscriber))}
    assert emails == {"back@example.org": SubscriberStatus.UNSUBSCRIBED, "fresh@example.org": SubscriberStatus.PENDING}


def test_resend_only_for_pending_addresses(session: Session, settings: Settings) -> None:
    assert request_new_link(session, settings, "nobody@example.org", NOW) is None
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    assert request_new_link(session, settings, "ada@example.org", NOW + HOUR) is Requested.COOLING_DOWN
    assert request_new_link(session, settings, "ADA@example.org", NOW + 25 * HOUR) is Requested.CONFIRMATION_QUEUED


def _received(server: SmtpServer, to: str) -> list[EmailMessage]:
    return [m.message for m in server.to(to)]


def test_confirmation_email_over_smtp(session: Session, settings: Settings, smtp_server: SmtpServer) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    transport = SmtpTransport(parse_smtp_url(smtp_server.url), timeout=5)
    assert send_notices(session, settings, transport, NOW) == {"sent": 1}
    assert send_notices(session, settings, transport, NOW) == {}  # nothing is sent twice
    (msg,) = _received(smtp_server, "ada@example.org")
    assert msg["Subject"] == "Confirm your subscription to Paper Digest"
    assert msg["List-Unsubscribe"] is None  # the reader is not on the list yet
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "every day at 08:00 (Europe/Paris)" in text and "on 2 topics" in text
    assert "KV cache" not in text  # nothing typed into the form is mailed (issue 11 #10)
    link = next(line.strip() for line in text.splitlines() if "/confirm/" in line)
    assert link.startswith("https://digest.example.org/confirm/")
    assert confirm(session, settings, _token(link), NOW + HOUR).status is SubscriberStatus.ACTIVE
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert f'href="{link}"' in html and 'style="' in html  # same look as the digest: inlined CSS


def test_a_trending_confirmation_says_what_was_chosen(
    session: Session, settings: Settings, smtp_server: SmtpServer
) -> None:
    request_signup(session, settings, "hot@example.org", Preferences([], trending=5), NOW)
    request_signup(session, settings, "both@example.org", Preferences(["agents"], trending=1), NOW)
    transport = SmtpTransport(parse_smtp_url(smtp_server.url), timeout=5)
    assert send_notices(session, settings, transport, NOW) == {"sent": 2}
    (hot,) = _received(smtp_server, "hot@example.org")
    (both,) = _received(smtp_server, "both@example.org")
    hot_text = hot.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    both_text = both.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "every day at 08:00 (UTC),\nwith the 5 trending papers of Hugging Face." in hot_text.replace("\r\n", "\n")
    assert "topic" not in hot_text.split("Nothing will be sent")[0]
    assert "on 1 topic and with the 1 trending paper of Hugging Face." in both_text
    assert "agents" not in both_text


def test_already_subscribed_email_has_manage_link_and_list_unsubscribe(
    session: Session, settings: Settings, smtp_server: SmtpServer
) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    confirm(session, settings, _token(confirm_url(settings, _sub(session, "ada@example.org"), NOW)), NOW)
    request_signup(session, settings, "ada@example.org", PREFS, NOW + 25 * HOUR)
    transport = SmtpTransport(parse_smtp_url(smtp_server.url), timeout=5)
    # The first confirmation is moot now (already active): it is closed, not sent.
    assert send_notices(session, settings, transport, NOW + 25 * HOUR) == {"sent": 1}
    (msg,) = _received(smtp_server, "ada@example.org")
    assert msg["Subject"] == "You are already subscribed to Paper Digest"
    assert msg["List-Unsubscribe"].startswith("<https://digest.example.org/unsubscribe/")
    assert "https://digest.example.org/manage/" in msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert [n.status for n in _notices(session)] == [DeliveryStatus.SKIPPED, DeliveryStatus.SENT]


def test_notice_to_someone_who_left_is_not_sent(session: Session, settings: Settings) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    confirm(session, settings, _token(confirm_url(settings, _sub(session, "ada@example.org"), NOW)), NOW)
    request_signup(session, settings, "ada@example.org", PREFS, NOW + 25 * HOUR)
    unsubscribe(session, _sub(session, "ada@example.org"), NOW + 25 * HOUR)
    counts = send_notices(session, settings, OutboxTransport(settings.outbox_dir), NOW + 26 * HOUR)
    assert counts == {}
    assert not settings.outbox_dir.exists()


def test_a_message_in_the_outbox_parses(session: Session, settings: Settings) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    send_notices(session, settings, OutboxTransport(settings.outbox_dir), NOW)
    (path,) = settings.outbox_dir.glob("*.eml")
    msg = email.message_from_bytes(path.read_bytes(), policy=policy.default)
    assert msg["To"] == "ada@example.org"


@pytest.mark.parametrize(
    ("read_at", "ok"),
    [
        (NOW, True),
        (NOW + 72 * HOUR, True),  # at its age limit to the second
        (NOW + 72 * HOUR + timedelta(seconds=1), False),
        (NOW - timedelta(seconds=1), False),  # a token from the future is not trusted either
    ],
)
def test_a_token_is_stamped_and_aged_by_the_times_given(read_at: datetime, ok: bool) -> None:
    token = make_token(["k"], Purpose.CONFIRM, "h4ndle", 3, now=NOW)
    if ok:
        assert read_token(["k"], Purpose.CONFIRM, token, now=read_at, max_age=72 * 3600).handle == "h4ndle"
    else:
        with pytest.raises(TokenError, match="expired"):
            read_token(["k"], Purpose.CONFIRM, token, now=read_at, max_age=72 * 3600)
    # Without an age limit (manage and unsubscribe links) time does not matter.
    assert read_token(["k"], Purpose.CONFIRM, token, now=read_at).stamp == 3


@pytest.mark.parametrize("stamp", [None, 0, 3, 1_764_000_000_123_456, -1])
def test_a_link_token_is_compact_and_reads_back(stamp: int | None) -> None:
    token = make_token(["old", "k"], Purpose.VIEW, "Zx3_-q9AbCdEfGhI", stamp, now=NOW)
    assert "." not in token and len(token) <= (63 if stamp is not None else 52), token
    assert _unb64(token)[:2] == bytes((4, 5))  # version 4, the purpose's code
    data = read_token(["k"], Purpose.VIEW, token, now=NOW)
    assert (data.handle, data.stamp) == ("Zx3_-q9AbCdEfGhI", stamp)
    assert read_token(["k", "old"], Purpose.VIEW, token, now=NOW).handle == "Zx3_-q9AbCdEfGhI"


def test_a_link_token_is_refused_when_tampered_truncated_or_for_another_purpose() -> None:
    token = make_token(["k"], Purpose.MANAGE, "h4ndle", now=NOW)
    for other in set(Purpose) - {Purpose.MANAGE}:
        with pytest.raises(TokenError):
            read_token(["k"], other, token, now=NOW)
    with pytest.raises(TokenError, match="bad signature"):
        read_token(["another"], Purpose.MANAGE, token, now=NOW)
    raw = _unb64(token)
    for i in range(len(raw)):  # any byte changed, anywhere
        changed = raw[:i] + bytes((raw[i] ^ 1,)) + raw[i + 1 :]
        with pytest.raises(TokenError):
            read_token(["k"], Purpose.MANAGE, _b64(changed), now=NOW)
    for bad in (token[:-1], token[:10], "", token + "A", "!" * 30):
        with pytest.raises(TokenError):
            read_token(["k"], Purpose.MANAGE, bad, now=NOW)

    # Signed with the right key but not a token this code makes: refused all the same.
    def signed(payload: bytes) -> str:
        return _b64(payload + _compact_tag("k", Purpose.MANAGE, payload))

    issued = int(NOW.timestamp()).to_bytes(4, "big")
    for payload in (bytes((5, 2, 0)) + issued + b"h4ndle", bytes((4, 2, 0)) + issued, bytes((4, 2, 1)) + issued + b"x"):
        with pytest.raises(TokenError, match="malformed"):
            read_token(["k"], Purpose.MANAGE, signed(payload), now=NOW)
    with pytest.raises(TokenError, match="malformed"):
        read_token(["k"], Purpose.MANAGE, signed(bytes((4, 2, 0)) + issued + b"\xff\xfe"), now=NOW)


def test_links_in_emails_sent_before_the_compact_format_still_read() -> None:
    old = _serializer(["k"], Purpose.UNSUBSCRIBE, NOW).dumps({"h": "h4ndle", "t": 7})
    assert old.count(".") == 2
    data = read_token(["k"], Purpose.UNSUBSCRIBE, str(old), now=NOW + 400 * 24 * HOUR)
    assert (data.handle, data.stamp) == ("h4ndle", 7)
    with pytest.raises(TokenError):
        read_token(["k"], Purpose.MANAGE, str(old), now=NOW)
    # A feed's address keeps that format: a feed reader subscribed to it before sees no new address.
    feed = make_token(["k"], Purpose.FEED, "h4ndle", 0, now=NOW)
    assert feed == _serializer(["k"], Purpose.FEED, NOW).dumps({"h": "h4ndle", "t": 0})


def test_links_are_named() -> None:
    settings = Settings(_env_file=None, secret_key="k", base_url="https://digest.example.org")
    urls = links(settings, Subscriber(id=3, email="ada@example.org", created_at=NOW), NOW)
    assert urls.manage.startswith("https://digest.example.org/manage/")
    assert urls.unsubscribe.startswith("https://digest.example.org/unsubscribe/")


# --- the same work for every state of an address (issue 11 #8) ---------------------------------------


@dataclass
class Work:
    """What one request did to the database: its statements (SQL text, parameters aside), the rows
    its transaction changed, and its commits."""

    statements: list[str] = field(default_factory=list)
    rows_written: int = 0
    commits: int = 0


def _rows_changed(raw: Any) -> int:
    """Rows changed so far: on this SQLite connection, or in this PostgreSQL transaction."""
    if hasattr(raw, "total_changes"):
        return int(raw.total_changes)
    cursor = raw.cursor()
    cursor.execute("SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_xact_user_tables")
    return int(cursor.fetchone()[0])


@contextmanager
def _watch(engine: Engine) -> Iterator[Work]:
    work, start = Work(), list[int]()

    def before(conn: Connection, _cursor: Any, statement: str, *_: Any) -> None:
        if not start:
            start.append(_rows_changed(conn.connection.dbapi_connection))
        work.statements.append(" ".join(statement.split()))

    def commit(conn: Connection) -> None:
        work.commits += 1
        work.rows_written = _rows_changed(conn.connection.dbapi_connection) - start[0]

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "commit", commit)
    try:
        yield work
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "commit", commit)


def _address_in(session: Session, settings: Settings, state: str) -> str:
    """An address in `state`, made before NOW (the request under test comes at NOW)."""
    address, long_ago = f"{state}@example.org", NOW - timedelta(days=30)
    if state in ("pending", "cooling-down"):
        asked = NOW - (HOUR if state == "cooling-down" else 30 * HOUR)
        request_signup(session, settings, address, PREFS, asked)
    elif state != "new":
        status = {"paused": SubscriberStatus.PAUSED, "unsubscribed": SubscriberStatus.UNSUBSCRIBED}
        sub = subscriber(
            session, address, ["agents"], joined=long_ago, status=status.get(state, SubscriberStatus.ACTIVE)
        )
        if state == "suppressed":
            suppress(session, address, "hard bounce: 550", long_ago)
        elif state == "forgotten":
            forget(session, sub, long_ago)
        elif state == "active-cooling-down":
            request_signup(session, settings, address, PREFS, NOW - HOUR)  # its "already subscribed" note
    return address


STATES = {
    "new": Requested.CONFIRMATION_QUEUED,
    "pending": Requested.CONFIRMATION_QUEUED,
    "cooling-down": Requested.COOLING_DOWN,
    "active": Requested.REMINDER_QUEUED,
    "active-cooling-down": Requested.COOLING_DOWN,
    "paused": Requested.REMINDER_QUEUED,
    "unsubscribed": Requested.CONFIRMATION_QUEUED,
    "suppressed": Requested.SUPPRESSED,  # bounced: the row is kept, marked suppressed
    "forgotten": Requested.SUPPRESSED,  # "forget me": only the address's hash is left
}


def _work_per_state(
    session: Session, settings: Settings, engine: Engine, call: Callable[[Session, str], object]
) -> dict[str, tuple[Work, object]]:
    addresses = {state: _address_in(session, settings, state) for state in STATES}
    done = {}
    for state, address in addresses.items():
        with open_session(engine) as fresh, _watch(engine) as work:
            done[state] = (work, call(fresh, address))
    return done


def test_a_signup_does_the_same_work_for_every_state_of_an_address(
    session: Session, settings: Settings, engine: Engine
) -> None:
    """One timed sign-up told a forgotten address from a new one: the suppressed path returned after
    one query. Now every state runs the same statements and writes a row before its one commit."""
    done = _work_per_state(session, settings, engine, lambda s, a: request_signup(s, settings, a, PREFS, NOW))
    assert {state: result.outcome for state, (_, result) in done.items()} == STATES  # type: ignore[attr-defined]
    new = done["new"][0]
    assert len(new.statements) == 6, new.statements
    for state, (work, _) in done.items():
        assert work.statements == new.statements, state
        assert work.commits == 1, state
        assert work.rows_written >= 1, state  # never a transaction with nothing to flush


def test_asking_for_a_new_link_runs_the_same_statements_for_every_state(
    session: Session, settings: Settings, engine: Engine
) -> None:
    done = _work_per_state(session, settings, engine, lambda s, a: request_new_link(s, settings, a, NOW))
    outcomes = {state: outcome for state, (_, outcome) in done.items()}
    assert outcomes == {state: None for state in STATES} | {"pending": Requested.CONFIRMATION_QUEUED,
                                                            "cooling-down": Requested.COOLING_DOWN}  # fmt: skip
    with open_session(engine) as fresh, _watch(engine) as signup:
        request_signup(fresh, settings, "someone-else@example.org", PREFS, NOW)
    for state, (work, _) in done.items():
        assert (work.statements, work.commits) == (signup.statements, 1), state
        # A row is written for every address the database knows (even only by its hash); an address
        # it has never seen leaves nothing to write, and none is created for it.
        assert work.rows_written >= (0 if state == "new" else 1), state


# --- a second sign-up for a pending address (issue 11 #10) -------------------------------------------


def test_a_pending_signups_settings_stand_and_a_new_signup_only_sends_the_link_again(
    session: Session, settings: Settings
) -> None:
    first = request_signup(session, settings, "ada@example.org", PREFS, NOW)
    other = Preferences(["call +1 555 0100"], Frequency.WEEKLY, 6, "Asia/Tokyo", max_papers=5)
    assert request_signup(session, settings, "ada@example.org", other, NOW + HOUR).outcome is Requested.COOLING_DOWN
    assert _sub(session, "ada@example.org").preferences == check_preferences(PREFS)
    old_link = _token(confirm_url(settings, _sub(session, "ada@example.org"), NOW))
    later = request_signup(session, settings, "ada@example.org", other, NOW + 25 * HOUR)
    assert (later.subscriber_id, later.outcome) == (first.subscriber_id, Requested.CONFIRMATION_QUEUED)
    sub = _sub(session, "ada@example.org")
    assert sub.preferences == check_preferences(PREFS)  # the first request's settings stand
    assert [n.kind for n in _notices(session)] == [NoticeKind.CONFIRM, NoticeKind.CONFIRM]
    with pytest.raises(LinkError, match="superseded"):  # only the newest link confirms
        confirm(session, settings, old_link, NOW + 26 * HOUR)
    new_link = _token(confirm_url(settings, sub, NOW + 25 * HOUR))
    assert confirm(session, settings, new_link, NOW + 26 * HOUR).topics == ['"KV cache"', "agents"]


def test_link_payloads_are_opaque(session: Session, settings: Settings) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    sub = _sub(session, "ada@example.org")
    for url in (*links(settings, sub, NOW), confirm_url(settings, sub, NOW)):
        payload = _unb64(_token(url))[:-16]  # the tag is the last 16 bytes
        # Its head (version, purpose, flags, time), for a confirmation link its request's stamp, and
        # a random handle: no row id, no address hash.
        stamp = 8 if payload[2] & 1 else 0
        assert payload[7 + stamp :] == sub.handle.encode() and b"ada" not in payload
        assert (stamp == 8) is url.startswith(confirm_url(settings, sub, NOW).rpartition("/")[0])


@pytest.mark.parametrize(("days", "manage_works"), [(89, True), (91, False)])
def test_manage_links_live_90_days_and_unsubscribe_links_for_ever(
    session: Session, settings: Settings, days: int, manage_works: bool
) -> None:
    request_signup(session, settings, "ada@example.org", PREFS, NOW)
    sub = _sub(session, "ada@example.org")
    manage, leave = (_token(u) for u in links(settings, sub, NOW))
    later = NOW + timedelta(days=days)
    if manage_works:
        assert subscriber_for(session, settings, Purpose.MANAGE, manage, now=later).id == sub.id
    else:
        with pytest.raises(LinkError, match="expired"):
            subscriber_for(session, settings, Purpose.MANAGE, manage, now=later)
    forever = NOW + timedelta(days=3650)
    assert subscriber_for(session, settings, Purpose.UNSUBSCRIBE, leave, now=forever).id == sub.id


@pytest.mark.parametrize(
    ("prefs", "topics", "trending"),
    [
        (Preferences([]), [], 10),  # no topic: a trending subscription, the default ten
        (Preferences(["  ", ""]), [], 10),
        (Preferences([], trending=3), [], 3),
        (Preferences(["agents"]), ["agents"], None),  # topics and no trending: today's digest only
        (Preferences(["agents"], trending=5), ["agents"], 5),  # both: two sections
    ],
)
def test_topics_are_optional_a_subscription_without_them_is_trending(
    session: Session, settings: Settings, prefs: Preferences, topics: list[str], trending: int | None
) -> None:
    request_signup(session, settings, "ada@example.org", prefs, NOW)
    row = session.exec(select(Subscriber)).one()
    assert (row.topics, row.trending) == (topics, trending)
