"""Feedback from the email: "More like this" / "Less like this" links on every card, a one-button
page (a GET records nothing), one vote per reader and paper, undo, and "forget me" deleting it all.

The web routes run through the real ASGI app (tests/webclient.py); the digest goes over a real SMTP
server on loopback and its links are followed in the same client."""

from __future__ import annotations

import base64
import hmac
import json
import re
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from httpx2 import Response as ClientResponse
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digest.compose import feedback_url, links
from digest.config import Settings
from digest.db import open_session
from digest.feedback import Feedback, read_feedback, record
from digest.logs import redact_tokens
from digest.models import ReaderModel, Subscriber, Vote
from digest.pipeline import run_send
from digest.send import make_transport
from digest.signup import LinkError
from digest.subscribers import unsubscribe
from digest.suppress import forget
from digest.tokens import Purpose, _v3_mac, _v4_mac, make_feedback_token, make_token, topic_tag
from digest.web.app import create_app
from digest.web.dispatch import TRAIN_READER
from digest.web.security import MemoryRateLimiter
from tests.conftest import NOW, port_open, require
from tests.factories import add_papers, paper
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401  (the fixture)
from tests.webclient import (  # noqa: F401  (clock, site: fixtures)
    ADA,
    BASE,
    Clock,
    Site,
    assert_bad_link,
    assert_forbidden,
    clock,
    csrf_of,
    site,
    tamper,
    token_of,
)

PAPER, OTHER = "2611.00001", "2611.00002"
TITLE = "Diffusion models for text"
FEEDBACK_LINK = re.compile(r"https://digest\.example\.org(/feedback/[A-Za-z0-9_.\-]+)")


@pytest.fixture
def reader(site: Site) -> Subscriber:
    """Ada, subscribed to diffusion, and two papers of this week."""
    with open_session(site.engine) as session:
        add_papers(
            session,
            paper(PAPER, TITLE, "We study diffusion.", first_seen=NOW - timedelta(days=1)),
            paper(OTHER, "Diffusion for graphs", "Diffusion on graphs.", first_seen=NOW - timedelta(days=1)),
        )
    return site.add_subscriber(ADA, ("diffusion", "cat:cs.CL"))


def _path(site: Site, sub: Subscriber, value: int = 1, pid: str = PAPER, topic: str | None = "diffusion") -> str:
    url = feedback_url(site.settings, sub, pid, value, topic, site.clock())
    assert url is not None
    return url.removeprefix(site.settings.base_url)


def _votes(site: Site) -> list[tuple[int, str, int, str | None]]:
    with open_session(site.engine) as session:
        rows = session.exec(select(Vote).order_by(col(Vote.id)))
        return [(v.subscriber_id, v.paper_id, v.value, v.topic) for v in rows]


def _post(site: Site, path: str) -> ClientResponse:
    """The page's button, pressed: the form on the page the link opens, posted with its CSRF field."""
    page = site.client.get(path)
    assert page.status_code == 200, page.text[:300]
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    response: ClientResponse = site.client.post(action.group(1), data={"csrf_token": csrf_of(page.text)})
    return response


def _undo(site: Site, recorded_page: str) -> ClientResponse:
    action = re.search(r'<form method="post" action="([^"]+/undo)"', recorded_page)
    assert action is not None
    response: ClientResponse = site.client.post(action.group(1), data={"csrf_token": csrf_of(recorded_page)})
    return response


# --- the link ---------------------------------------------------------------------------------------


def _bytes_of(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def _token_of_bytes(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_a_feedback_link_is_short_and_names_the_topic_only_by_a_tag(site: Site, reader: Subscriber) -> None:
    path = _path(site, reader, topic='"long context" OR "a very long topic the reader typed in full"')
    token = token_of(path)
    assert len(token) <= 72 and "." not in token  # one base64url word, in both parts of every card
    raw = _bytes_of(token)
    assert raw[0] == 4, "the binary format's version"
    assert b"long context" not in raw and reader.email.encode() not in raw
    assert reader.handle.encode() in raw and PAPER.encode() in raw
    assert bytes.fromhex(topic_tag('"long context" OR "a very long topic the reader typed in full"')) in raw
    with open_session(site.engine) as session:
        fb = read_feedback(session, site.settings, token, site.clock())
    assert (fb.paper.id, fb.value, fb.topic) == (PAPER, 1, None)  # a topic the reader no longer has: none


def test_a_link_in_the_json_format_of_earlier_digests_still_reads(site: Site, reader: Subscriber) -> None:
    """Digests sent before the binary format carry base64url(JSON) "." tag tokens (v2)."""
    body = (
        base64.urlsafe_b64encode(
            json.dumps(
                {
                    "h": reader.handle,
                    "p": PAPER,
                    "v": -1,
                    "i": int(site.clock().timestamp()),
                    "k": topic_tag("diffusion"),
                }
            ).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    key = hmac.digest(site.settings.signing_keys[-1].encode(), b"paper-digest.feedback.v2", "sha256")
    mac = hmac.digest(key, body.encode(), "sha256")[:16]
    v2 = f"{body}.{_token_of_bytes(mac)}"
    with open_session(site.engine) as session:
        fb = read_feedback(session, site.settings, v2, site.clock())
        assert (fb.paper.id, fb.value, fb.topic) == (PAPER, -1, "diffusion")
        with pytest.raises(LinkError, match="bad signature"):
            read_feedback(session, site.settings, f"{body}.{_token_of_bytes(bytes(16))}", site.clock())


def test_the_tag_finds_the_readers_topic(site: Site, reader: Subscriber) -> None:
    with open_session(site.engine) as session:
        fb = read_feedback(session, site.settings, token_of(_path(site, reader, -1, topic="cat:cs.CL")), site.clock())
    assert (fb.value, fb.topic) == (-1, "cat:cs.CL") and topic_tag("cat:cs.CL") != topic_tag("diffusion")


def test_a_link_signed_with_the_previous_key_still_works_after_rotation(site: Site, reader: Subscriber) -> None:
    now = site.clock()
    old = make_feedback_token(["the-old-key-0123456789abcdef"], reader.handle, PAPER, -1, None, now=now)
    rotated = site.settings.model_copy(update={"old_secret_keys": ["the-old-key-0123456789abcdef"]})
    with open_session(site.engine) as session:
        assert read_feedback(session, rotated, old, now).value == -1
        with pytest.raises(LinkError, match="bad signature"):
            read_feedback(session, site.settings, old, now)  # without the old key in the list: refused


def test_a_link_with_the_hmac_tag_of_earlier_digests_still_reads(site: Site, reader: Subscriber) -> None:
    """Digests sent before the BLAKE2b tag carry version 3: the same layout, an HMAC-SHA256 tag."""
    raw = _bytes_of(token_of(_path(site, reader, -1, topic="diffusion")))
    v3 = bytes([3]) + raw[1:-16]
    with open_session(site.engine) as session:
        fb = read_feedback(
            session, site.settings, _token_of_bytes(v3 + _v3_mac(site.settings.signing_keys[-1], v3)), site.clock()
        )
        assert (fb.paper.id, fb.value, fb.topic) == (PAPER, -1, "diffusion")
        with pytest.raises(LinkError, match="bad signature"):  # a v3 payload under a v4 tag
            read_feedback(session, site.settings, _token_of_bytes(v3 + raw[-16:]), site.clock())


def test_a_link_from_before_the_compact_format_still_reads(site: Site, reader: Subscriber) -> None:
    """Digests already in inboxes carry itsdangerous-signed feedback tokens (three dot-separated
    parts); they keep working for their 90 days."""
    payload = {"h": reader.handle, "p": PAPER, "v": 1, "k": topic_tag("diffusion")}
    legacy = URLSafeTimedSerializer(site.settings.signing_keys, salt="paper-digest.feedback").dumps(payload)
    assert legacy.count(".") == 2
    with open_session(site.engine) as session:
        fb = read_feedback(session, site.settings, legacy, datetime.now(UTC))
    assert (fb.paper.id, fb.value, fb.topic) == (PAPER, 1, "diffusion")


# --- the page ---------------------------------------------------------------------------------------


def test_a_get_shows_one_button_and_records_nothing(site: Site, reader: Subscriber) -> None:
    for _ in range(3):  # mail scanners open every link, some more than once
        page = site.client.get(_path(site, reader))
        assert page.status_code == 200
        assert page.text.count("<button") == 1
        assert f"Record: more like this — {TITLE}" in page.text
    assert "Record: less like this" in site.client.get(_path(site, reader, -1)).text
    assert _votes(site) == []


def test_a_title_in_latex_reads_as_text_on_the_page_and_in_the_api(site: Site, reader: Subscriber) -> None:
    with open_session(site.engine) as session:
        add_papers(
            session, paper("2611.00009", r"$\infty$Bench in $O(n^2)$", "Long.", first_seen=NOW - timedelta(days=1))
        )
    path = _path(site, reader, pid="2611.00009")
    assert "Record: more like this — ∞Bench in O(n²)" in site.client.get(path).text
    assert site.client.get(f"/api{path}").json()["title"] == "∞Bench in O(n²)"


def test_a_post_records_the_vote_once(site: Site, reader: Subscriber) -> None:
    path = _path(site, reader)
    first = _post(site, path)
    assert first.status_code == 200 and f"Recorded: more like this — {TITLE}." in first.text
    assert "already recorded" not in first.text and 'id="undo-button"' in first.text
    assert _votes(site) == [(reader.id, PAPER, 1, "diffusion")]
    second = _post(site, path)
    assert second.status_code == 200 and "It was already recorded." in second.text
    assert _votes(site) == [(reader.id, PAPER, 1, "diffusion")]


def test_a_vote_the_other_way_replaces_the_old_one(site: Site, reader: Subscriber) -> None:
    _post(site, _path(site, reader, 1))
    _post(site, _path(site, reader, 1, OTHER))
    less = _post(site, _path(site, reader, -1))
    assert "Recorded: less like this" in less.text and "already" not in less.text
    assert _votes(site) == [(reader.id, PAPER, -1, "diffusion"), (reader.id, OTHER, 1, "diffusion")]


def test_undo_removes_the_vote_and_the_link_records_again_only_on_post(site: Site, reader: Subscriber) -> None:
    path = _path(site, reader)
    recorded = _post(site, path)
    undone = _undo(site, recorded.text)
    assert undone.status_code == 200 and "is no longer recorded" in undone.text
    assert _votes(site) == []
    assert _undo(site, recorded.text).status_code == 200 and _votes(site) == []  # safe twice
    assert site.client.get(path).status_code == 200 and _votes(site) == []  # the replayed link: a GET
    assert "Recorded: more like this" in _post(site, path).text
    assert _votes(site) == [(reader.id, PAPER, 1, "diffusion")]


def test_undoing_an_old_vote_leaves_a_newer_one_the_other_way(site: Site, reader: Subscriber) -> None:
    recorded_more = _post(site, _path(site, reader, 1))
    _post(site, _path(site, reader, -1))
    _undo(site, recorded_more.text)
    assert _votes(site) == [(reader.id, PAPER, -1, "diffusion")]


def test_posts_without_the_csrf_field_record_nothing(site: Site, reader: Subscriber) -> None:
    path = _path(site, reader)
    site.client.get(path)  # the cookie, but not the field
    assert_forbidden(site.client.post(path, data={}))
    assert_forbidden(site.client.post(f"{path}/undo", data={}))
    assert _votes(site) == []


def _bad_tokens(site: Site, sub: Subscriber) -> dict[str, str]:
    good = token_of(_path(site, sub))
    keys, now = site.settings.signing_keys, site.clock()
    raw = _bytes_of(good)
    bad_payload = bytes([5]) + raw[1:-16]  # a version this code does not know, properly signed
    no_paper = raw[: -16 - len(PAPER)]
    no_paper_v3 = bytes([3]) + no_paper[1:]
    return {
        "tampered": tamper(good),
        "vote-flipped": _token_of_bytes(bytes([raw[0], raw[1] ^ 1]) + raw[2:]),  # "more" made "less", not re-signed
        "paper-changed": _token_of_bytes(raw.replace(PAPER.encode(), b"2611.00002")),
        "signature-changed": _token_of_bytes(raw[:-1] + bytes([raw[-1] ^ 0x40])),
        "truncated": good[:-4],
        "signed-but-malformed": _token_of_bytes(bad_payload + _v3_mac(keys[-1], bad_payload)),
        "signed-without-paper": _token_of_bytes(no_paper + _v4_mac(keys[-1], no_paper)),
        "signed-without-paper-v3": _token_of_bytes(no_paper_v3 + _v3_mac(keys[-1], no_paper_v3)),
        "v3-layout-with-a-v4-tag": _token_of_bytes(bytes([3]) + raw[1:-16] + raw[-16:]),
        "not-base64": "!" * 40,
        "garbage": "abc.def.ghi",
        "garbage-compact": "eyJoIjoiYSJ9.AAAA",
        "manage-token": token_of(links(site.settings, sub, now).manage),
        "unsubscribe-token": make_token(keys, Purpose.UNSUBSCRIBE, sub.handle, now=now),
        "another-key": make_feedback_token(["another-key-entirely"], sub.handle, PAPER, 1, None, now=now),
        "no-vote": make_token(keys, Purpose.FEEDBACK, sub.handle, now=now),
        "expired": token_of(feedback_url(site.settings, sub, PAPER, 1, None, now - timedelta(days=91)) or ""),
        "unknown-paper": token_of(_path(site, sub, pid="2611.99999")),
    }


def test_links_that_do_not_work_get_the_bad_link_page_and_record_nothing(site: Site, reader: Subscriber) -> None:
    csrf = csrf_of(site.client.get("/").text)
    for name, token in _bad_tokens(site, reader).items():
        site.limiter.counts.clear()  # type: ignore[attr-defined]  # 6 requests per token: under the rate limit
        assert_bad_link(site.client.get(f"/feedback/{token}"))
        assert_bad_link(site.client.post(f"/feedback/{token}", data={"csrf_token": csrf}))
        assert_bad_link(site.client.post(f"/feedback/{token}/undo", data={"csrf_token": csrf}))
        for method in ("GET", "POST", "DELETE"):
            api = site.client.request(method, f"/api/feedback/{token}")
            assert (api.status_code, api.json()) == (400, {"detail": "This link is not valid."}), (name, method)
    assert _votes(site) == []


def test_a_link_works_for_90_days(site: Site, reader: Subscriber) -> None:
    path = _path(site, reader)
    site.clock.advance(days=89)
    assert site.client.get(path).status_code == 200
    site.clock.advance(days=2)
    assert_bad_link(site.client.get(path))


@pytest.mark.parametrize("gone", ["unsubscribed", "forgotten"])
def test_the_link_of_a_reader_who_left_is_a_bad_link_like_any_other(site: Site, reader: Subscriber, gone: str) -> None:
    path = _path(site, reader)
    _post(site, path)
    with open_session(site.engine) as session:
        sub = session.get(Subscriber, reader.id)
        assert sub is not None
        unsubscribe(session, sub, site.clock()) if gone == "unsubscribed" else forget(session, sub, site.clock())
    page = site.client.get(path)
    assert_bad_link(page)
    assert ADA not in page.text
    assert site.client.get(f"/api/feedback/{token_of(path)}").status_code == 400


def test_unsubscribing_keeps_the_votes_and_forget_me_deletes_them_and_the_model(site: Site, reader: Subscriber) -> None:
    _post(site, _path(site, reader))
    with open_session(site.engine) as session:
        assert reader.id is not None
        session.add(ReaderModel(subscriber_id=reader.id, embedding_model="m", weights=b"\0" * 8, trained_at=NOW))
        session.commit()
        sub = session.get(Subscriber, reader.id)
        assert sub is not None
        unsubscribe(session, sub, site.clock())
    assert _votes(site) == [(reader.id, PAPER, 1, "diffusion")]  # they may come back
    with open_session(site.engine) as session:
        sub = session.get(Subscriber, reader.id)
        assert sub is not None
        forget(session, sub, site.clock())
        assert session.exec(select(ReaderModel)).all() == []
    assert _votes(site) == []


def test_votes_are_nowhere_in_the_metrics(site: Site, reader: Subscriber) -> None:
    _post(site, _path(site, reader))
    site.settings.metrics_token = "metrics-token-for-this-test-0123456789"
    page = site.client.get("/metrics", headers={"Authorization": f"Bearer {site.settings.metrics_token}"})
    assert page.status_code == 200
    assert "vote" not in page.text.lower() and "feedback" not in page.text.lower()


# --- the API ----------------------------------------------------------------------------------------


def test_the_api_describes_records_and_undoes_a_vote(site: Site, reader: Subscriber) -> None:
    url = f"/api/feedback/{token_of(_path(site, reader, -1))}"
    described = {"paper_id": PAPER, "title": TITLE, "value": -1, "topic": "diffusion", "recorded": False}
    assert site.client.get(url).json() == described and _votes(site) == []
    for _ in range(2):
        assert site.client.post(url).json() == {**described, "recorded": True}
        assert _votes(site) == [(reader.id, PAPER, -1, "diffusion")]
    assert site.client.get(url).json()["recorded"] is True
    for _ in range(2):
        assert site.client.delete(url).json() == described
    assert _votes(site) == []


# --- the database -----------------------------------------------------------------------------------


def test_concurrent_posts_of_one_link_make_one_row(site: Site, reader: Subscriber) -> None:
    token = token_of(_path(site, reader))
    start = threading.Barrier(6)
    changed: list[bool] = []

    def press() -> None:
        with open_session(site.engine) as session:
            fb: Feedback = read_feedback(session, site.settings, token, site.clock())
            start.wait()
            changed.append(record(session, fb, site.clock()))

    threads = [threading.Thread(target=press) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert _votes(site) == [(reader.id, PAPER, 1, "diffusion")]
    assert changed.count(True) == 1


# --- the retraining hook ----------------------------------------------------------------------------

REDIS_URL = "redis://127.0.0.1:6379/14"  # the database test_web_dispatch.py uses for its queues


@pytest.fixture
def queue() -> Iterator[str]:
    require("Redis on 127.0.0.1:6379", port_open("127.0.0.1", 6379))
    name = f"feedback-{uuid.uuid4().hex[:12]}"
    yield name
    redis.Redis.from_url(REDIS_URL).delete(name)


def _tasks(queue: str) -> list[tuple[str, list[Any]]]:
    found = []
    for raw in redis.Redis.from_url(REDIS_URL).lrange(queue, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _options = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], args))
    return found


def test_a_changed_vote_queues_the_readers_retraining_when_there_is_a_broker(
    settings: Settings, engine: Engine, queue: str
) -> None:
    with_broker = settings.model_copy(update={"broker_url": REDIS_URL, "celery_queue": queue})
    app = create_app(with_broker, engine=engine, clock=Clock(), limiter=MemoryRateLimiter(), send_in_process=False)
    site = Site(with_broker, engine)
    with open_session(engine) as session:
        add_papers(session, paper(PAPER, TITLE, first_seen=NOW - timedelta(days=1)))
    sub = site.add_subscriber(ADA)
    url = f"/api/feedback/{token_of(_path(site, sub))}"
    with TestClient(app, base_url=BASE) as client:
        client.get(url)
        assert _tasks(queue) == []  # reading changes nothing
        client.post(url)
        client.post(url)  # the same vote again: nothing to retrain
        client.delete(url)
    assert _tasks(queue) == [(TRAIN_READER, [sub.id]), (TRAIN_READER, [sub.id])]


# --- tokens stay out of logs and caches -------------------------------------------------------


def test_feedback_tokens_stay_out_of_logs_and_caches(site: Site, reader: Subscriber) -> None:
    path = _path(site, reader)
    assert redact_tokens(f"GET {path} HTTP/1.1") == "GET /feedback/[token] HTTP/1.1"
    assert site.client.get(path).headers.get("cache-control") == "no-store"


# --- end to end: the digest received over SMTP --------------------------------------------------------


def _received(session: Session, settings: Settings, smtp: SmtpServer, at: datetime) -> tuple[str, str]:
    run_send(session, settings, make_transport(settings), at)
    (message,) = [m.message for m in smtp.messages]
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()).replace("\r\n", "\n"), str(html.get_content()).replace("\r\n", "\n")


def test_the_received_digest_has_both_links_on_each_card_and_following_one_records_the_vote(
    site: Site, reader: Subscriber, session: Session, smtp_server: SmtpServer
) -> None:
    settings = site.settings.model_copy(update={"smtp_url": smtp_server.url, "smtp_timeout": 5.0})
    text, html = _received(session, settings, smtp_server, NOW.replace(hour=8, minute=30))
    assert re.findall(r"^\d+\. (.+)$", text, re.M) == [TITLE, "Diffusion for graphs"]
    assert text.count("   More like this: https://digest.example.org/feedback/") == 2
    assert text.count("   Less like this: https://digest.example.org/feedback/") == 2
    assert html.count(">More like this</a>") == 2 and html.count(">Less like this</a>") == 2
    assert 'Matched: diffusion, cs.CL · <a class="vote" href="https://digest.example.org/feedback/' in html
    more_first = FEEDBACK_LINK.findall(text)[0]  # the first card's "More like this"
    assert _votes(site) == []
    assert f"Record: more like this — {TITLE}" in site.client.get(more_first).text
    assert _votes(site) == []
    assert "Recorded: more like this" in _post(site, more_first).text
    assert _votes(site) == [(reader.id, PAPER, 1, "diffusion")]


def test_feedback_links_are_rate_limited_like_the_other_token_endpoints(site: Site, reader: Subscriber) -> None:
    site.settings.link_rate_limit = 3
    assert isinstance(site.limiter, MemoryRateLimiter)
    site.limiter.counts.clear()
    path = _path(site, reader)
    codes = [site.client.get(path).status_code, site.client.get(f"/api{path}").status_code]
    codes += [site.client.post(f"/api{path}").status_code, site.client.get(path).status_code]
    assert codes == [200, 200, 200, 429]
    assert site.client.post(f"/api{path}").status_code == 429
