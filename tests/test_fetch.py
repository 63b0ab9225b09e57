"""Fetching and ingesting over real HTTP: `digest.fetch` and `digest.ingest` against a loopback server.

Only `Throttle` is tested with a fake clock; everything else goes through httpx to tests/httpserver.py.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, func, select

from digest.config import USER_AGENT, Settings, SourceConfig, SourceKind
from digest.db import open_session
from digest.fetch import Throttle, Validators, fetch, make_client, redirect_problem, retry_after
from digest.ingest import SourceReport, fetch_all, run_source, source_urls
from digest.models import Paper, SourceState
from tests.conftest import NOW, free_port
from tests.httpserver import HTTPTestServer, Response, http_server_fixture  # noqa: F401  (the fixture)

SAMPLES = Path(__file__).resolve().parent.parent / "digest" / "samples"
ARXIV_RSS = (SAMPLES / "arxiv-listing.rss").read_bytes()  # 40 items: 38 new/cross, 2 replacements
HF_ITEMS = json.loads((SAMPLES / "hf-daily-papers.json").read_bytes())  # 30 items, one withdrawn (2410.18959)
HF_JSON = json.dumps(HF_ITEMS).encode()
EMPTY_RSS = b"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>cs.AI updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.AI</link>
<description>cs.AI updates on the arXiv.org e-print archive.</description></channel></rss>
"""
ETAG = '"listing-v1"'
LAST_MODIFIED = "Mon, 30 Nov 2026 08:00:00 GMT"
MB = 1024 * 1024


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with make_client(5.0) as client:
        yield client


def count_papers(session: Session) -> int:
    return session.exec(select(func.count()).select_from(Paper)).one()


def state_of(engine: Engine, name: str) -> SourceState:
    """The source's row as stored, read through a fresh session (not the identity map of the one under test)."""
    with open_session(engine) as fresh:
        state = fresh.get(SourceState, name)
        assert state is not None, f"no SourceState row for {name!r}"
        return state


# --------------------------------------------------------------------------------------------------------------------
# fetch(): one GET against the real server
# --------------------------------------------------------------------------------------------------------------------


def test_200_returns_the_body_and_its_validators(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.route(
        "/rss/cs.AI",
        ARXIV_RSS,
        headers={"ETag": ETAG, "Last-Modified": LAST_MODIFIED, "Content-Type": "application/rss+xml"},
    )

    fetched = fetch(client, http_server.url("/rss/cs.AI"), now=NOW)

    assert fetched.status == "ok"
    assert fetched.content == ARXIV_RSS
    assert fetched.etag == ETAG
    assert fetched.last_modified == LAST_MODIFIED
    assert fetched.error is None
    assert fetched.retry_at is None
    [request] = http_server.requests
    assert (request.method, request.path) == ("GET", "/rss/cs.AI")
    assert request.headers.get("If-None-Match") is None
    assert request.headers.get("If-Modified-Since") is None


def test_200_without_validators_gives_none(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.route("/plain", b"<rss/>")

    fetched = fetch(client, http_server.url("/plain"), now=NOW)

    assert (fetched.status, fetched.content, fetched.etag, fetched.last_modified) == ("ok", b"<rss/>", None, None)


def test_second_fetch_is_conditional_and_304_means_not_modified(
    http_server: HTTPTestServer, client: httpx.Client
) -> None:
    http_server.feed("/feed", ARXIV_RSS, etag=ETAG, last_modified=LAST_MODIFIED)
    first = fetch(client, http_server.url("/feed"), now=NOW)

    second = fetch(client, http_server.url("/feed"), now=NOW, validators=Validators(first.etag, first.last_modified))

    assert second.status == "not_modified"
    assert second.content == b""
    assert second.error is None
    conditional = http_server.requests[1]
    assert conditional.headers.get("If-None-Match") == ETAG
    assert conditional.headers.get("If-Modified-Since") == LAST_MODIFIED


def test_a_changed_document_is_fetched_again_despite_old_validators(
    http_server: HTTPTestServer, client: httpx.Client
) -> None:
    http_server.feed("/feed", b"<rss>new</rss>", etag='"listing-v2"')

    fetched = fetch(client, http_server.url("/feed"), now=NOW, validators=Validators(ETAG))

    assert (fetched.status, fetched.content, fetched.etag) == ("ok", b"<rss>new</rss>", '"listing-v2"')
    assert http_server.requests[0].headers.get("If-None-Match") == ETAG


def test_if_modified_since_alone_can_give_304(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.feed("/feed", ARXIV_RSS, last_modified=LAST_MODIFIED)

    fetched = fetch(client, http_server.url("/feed"), now=NOW, validators=Validators(last_modified=LAST_MODIFIED))

    assert fetched.status == "not_modified"
    [request] = http_server.requests
    assert request.headers.get("If-None-Match") is None
    assert request.headers.get("If-Modified-Since") == LAST_MODIFIED


def test_user_agent_names_the_project(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.route("/feed", b"<rss/>")

    fetch(client, http_server.url("/feed"), now=NOW)

    user_agent = http_server.requests[0].headers.get("User-Agent")
    assert user_agent == USER_AGENT
    assert user_agent.startswith("paper-digest/")
    assert "https://github.com/paper-digest/paper-digest" in user_agent


def test_a_gzipped_body_is_decoded(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.route("/feed.gz", gzip.compress(ARXIV_RSS), headers={"Content-Encoding": "gzip"})

    fetched = fetch(client, http_server.url("/feed.gz"), now=NOW)

    assert fetched.status == "ok"
    assert fetched.content == ARXIV_RSS
    assert "gzip" in (http_server.requests[0].headers.get("Accept-Encoding") or "")


def test_429_with_retry_after_seconds_gives_retry_at(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.route("/busy", b"slow down", status=429, headers={"Retry-After": "120"})

    fetched = fetch(client, http_server.url("/busy"), now=NOW)

    assert fetched.status == "error"
    assert fetched.error == "HTTP 429"
    assert fetched.retry_at == NOW + timedelta(seconds=120)
    assert fetched.content == b""


def test_503_with_retry_after_http_date_gives_retry_at(http_server: HTTPTestServer, client: httpx.Client) -> None:
    back_at = NOW + timedelta(hours=2)
    http_server.route("/down", status=503, headers={"Retry-After": format_datetime(back_at, usegmt=True)})

    fetched = fetch(client, http_server.url("/down"), now=NOW)

    assert (fetched.status, fetched.error, fetched.retry_at) == ("error", "HTTP 503", back_at)


def test_429_without_retry_after_has_no_retry_at(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.route("/busy", status=429)

    fetched = fetch(client, http_server.url("/busy"), now=NOW)

    assert (fetched.status, fetched.error, fetched.retry_at) == ("error", "HTTP 429", None)


@pytest.mark.parametrize("status", [403, 404, 410, 500, 502])
def test_http_errors_report_the_status(http_server: HTTPTestServer, client: httpx.Client, status: int) -> None:
    # Retry-After is only honoured on 429 and 503.
    http_server.route("/feed", b"<html>nope</html>", status=status, headers={"Retry-After": "60"})

    fetched = fetch(client, http_server.url("/feed"), now=NOW)

    assert fetched.status == "error"
    assert fetched.error == f"HTTP {status}"
    assert fetched.retry_at is None
    assert fetched.content == b""


def test_unrouted_path_is_a_404_error(http_server: HTTPTestServer, client: httpx.Client) -> None:
    fetched = fetch(client, http_server.url("/nothing-here"), now=NOW)

    assert (fetched.status, fetched.error) == ("error", "HTTP 404")


@pytest.mark.parametrize("content_length", [True, False], ids=["with-content-length", "chunked"])
def test_a_60_mb_body_is_refused_by_the_default_cap(
    http_server: HTTPTestServer, client: httpx.Client, content_length: bool
) -> None:
    http_server.stream("/huge", 60 * MB, content_length=content_length)

    fetched = fetch(client, http_server.url("/huge"), now=NOW)

    assert fetched.status == "error"
    assert fetched.error == f"body larger than {50 * MB} bytes"
    assert fetched.content == b""


@pytest.mark.parametrize("content_length", [True, False], ids=["with-content-length", "chunked"])
@pytest.mark.parametrize(("size", "status"), [(999, "ok"), (1000, "ok"), (1001, "error")])
def test_size_cap_boundary(
    http_server: HTTPTestServer, client: httpx.Client, content_length: bool, size: int, status: str
) -> None:
    http_server.stream("/body", size, chunk_size=300, content_length=content_length)

    fetched = fetch(client, http_server.url("/body"), now=NOW, max_bytes=1000)

    assert fetched.status == status
    if status == "ok":
        assert fetched.content == b"x" * size
    else:
        assert fetched.error == "body larger than 1000 bytes"


def test_a_gzipped_body_is_capped_by_its_decoded_size(http_server: HTTPTestServer, client: httpx.Client) -> None:
    # 5 MB of zeros compress to a few KB: Content-Length is small, the decoded body is not.
    http_server.route("/bomb", gzip.compress(b"\0" * (5 * MB)), headers={"Content-Encoding": "gzip"})

    fetched = fetch(client, http_server.url("/bomb"), now=NOW, max_bytes=MB)

    assert (fetched.status, fetched.error) == ("error", f"body larger than {MB} bytes")


@pytest.mark.timeout(30)
def test_a_server_that_never_answers_times_out(http_server: HTTPTestServer) -> None:
    http_server.hang("/slow", seconds=60)

    with make_client(0.5) as client:
        fetched = fetch(client, http_server.url("/slow"), now=NOW)

    assert fetched.status == "error"
    assert fetched.error == "timed out after 0.5s"
    assert http_server.paths() == ["/slow"]


def test_connection_refused_is_an_error_not_an_exception(client: httpx.Client) -> None:
    fetched = fetch(client, f"http://127.0.0.1:{free_port()}/feed", now=NOW)

    assert fetched.status == "error"
    assert fetched.error is not None
    assert fetched.error.startswith("ConnectError: ")


def test_a_corrupt_gzip_body_is_an_error_not_an_exception(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.route("/feed", b"this is not gzip at all", headers={"Content-Encoding": "gzip"})

    fetched = fetch(client, http_server.url("/feed"), now=NOW)

    assert fetched.status == "error"
    assert fetched.error is not None
    assert fetched.error.startswith("DecodingError: ")


def test_redirects_are_followed(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.redirect("/old", "/moved", status=301)
    http_server.redirect("/moved", http_server.url("/feed"), status=302)
    http_server.route("/feed", ARXIV_RSS, headers={"ETag": ETAG})

    fetched = fetch(client, http_server.url("/old"), now=NOW)

    assert (fetched.status, fetched.content, fetched.etag) == ("ok", ARXIV_RSS, ETAG)
    assert http_server.paths() == ["/old", "/moved", "/feed"]


def test_a_redirect_loop_is_an_error_not_an_exception(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.redirect("/a", "/b")
    http_server.redirect("/b", "/a")

    fetched = fetch(client, http_server.url("/a"), now=NOW)

    assert fetched.status == "error"
    assert fetched.error is not None
    assert fetched.error == "more than 5 redirects"
    assert http_server.paths() == ["/a", "/b", "/a", "/b", "/a", "/b"]  # the first request and 5 redirects


@pytest.mark.parametrize(
    ("value", "retry_at"),
    [("99999999999999999999", NOW + timedelta(days=1)), ("\xb2", None)],
    ids=["huge-seconds", "superscript-two"],
)
def test_a_hostile_retry_after_header_does_not_make_fetch_raise(
    http_server: HTTPTestServer, client: httpx.Client, value: str, retry_at: datetime | None
) -> None:
    # fetch() promises never to raise for HTTP trouble; a header value is server-controlled input.
    http_server.route("/busy", status=429, headers={"Retry-After": value})

    fetched = fetch(client, http_server.url("/busy"), now=NOW)

    assert (fetched.status, fetched.error, fetched.retry_at) == ("error", "HTTP 429", retry_at)


def test_fetch_waits_on_the_throttle_before_each_request(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.route("/feed", b"<rss/>")
    clock = FakeClock()
    throttle = Throttle(3.0, hosts=frozenset({"127.0.0.1"}), clock=clock, sleep=clock.sleep)

    first = fetch(client, http_server.url("/feed"), now=NOW, throttle=throttle)
    second = fetch(client, http_server.url("/feed"), now=NOW, throttle=throttle)

    assert (first.status, second.status) == ("ok", "ok")
    assert clock.sleeps == [3.0]
    assert http_server.paths() == ["/feed", "/feed"]


# --------------------------------------------------------------------------------------------------------------------
# retry_after(): table tests
# --------------------------------------------------------------------------------------------------------------------


def http_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("120", NOW + timedelta(seconds=120)),
        ("  120 ", NOW + timedelta(seconds=120)),
        ("0", NOW),
        ("86400", NOW + timedelta(days=1)),
        ("86401", NOW + timedelta(days=1)),
        ("31536000", NOW + timedelta(days=1)),
        (http_date(NOW + timedelta(hours=2)), NOW + timedelta(hours=2)),
        (http_date(NOW + timedelta(days=3)), NOW + timedelta(days=1)),
        (http_date(NOW - timedelta(hours=1)), NOW),
        ("Mon, 30 Nov 2026 10:30:00 +0100", NOW + timedelta(minutes=30)),
        ("Mon, 30 Nov 2026 09:45:00 -0000", NOW + timedelta(minutes=45)),  # no zone: read as UTC
        (None, None),
        ("", None),
        ("   ", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("120 seconds", None),
        ("Mon, 31 Nov 2026 10:00:00 GMT", None),
    ],
)
def test_retry_after(value: str | None, expected: datetime | None) -> None:
    assert retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("99999999999999999999", NOW + timedelta(days=1)), ("\xb2", None)],
    ids=["huge-seconds-capped", "superscript-two-is-garbage"],
)
def test_retry_after_never_raises(value: str, expected: datetime | None) -> None:
    # A huge count of seconds is capped at one day like any other; "²" passes str.isdigit() but is no number.
    assert retry_after(value, NOW) == expected


# --------------------------------------------------------------------------------------------------------------------
# Throttle: a pure unit test with a fake clock
# --------------------------------------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that only moves when told to, or when someone sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_two_arxiv_requests_are_spaced_by_the_interval() -> None:
    clock = FakeClock()
    throttle = Throttle(3.0, clock=clock, sleep=clock.sleep)
    allowed_at = []

    throttle.wait("https://rss.arxiv.org/rss/cs.AI")
    allowed_at.append(clock())
    clock.advance(0.5)  # the first request took half a second
    throttle.wait("https://rss.arxiv.org/rss/cs.CL")
    allowed_at.append(clock())

    assert allowed_at == [1000.0, 1003.0]
    assert clock.sleeps == [2.5]


def test_no_wait_once_the_interval_has_passed() -> None:
    clock = FakeClock()
    throttle = Throttle(3.0, clock=clock, sleep=clock.sleep)

    throttle.wait("https://rss.arxiv.org/rss/cs.AI")
    clock.advance(3.0)
    throttle.wait("https://rss.arxiv.org/rss/cs.AI")
    clock.advance(7.0)
    throttle.wait("https://rss.arxiv.org/rss/cs.AI")

    assert clock.sleeps == []


def test_three_quick_arxiv_requests_wait_each_time() -> None:
    clock = FakeClock()
    throttle = Throttle(3.0, clock=clock, sleep=clock.sleep)

    for _ in range(3):
        throttle.wait("https://export.arxiv.org/api/query?search_query=cat:cs.AI")

    assert clock.sleeps == [3.0, 3.0]
    assert clock() == 1006.0


def test_other_hosts_are_not_throttled() -> None:
    clock = FakeClock()
    throttle = Throttle(3.0, clock=clock, sleep=clock.sleep)

    for url in [
        "https://huggingface.co/api/daily_papers?date=2026-11-30",
        "https://huggingface.co/api/daily_papers?date=2026-11-29",
        "http://127.0.0.1:8000/feed",
        "https://notarxiv.org/rss",
        "https://arxiv.org.evil.example/rss",
    ]:
        throttle.wait(url)

    assert clock.sleeps == []
    assert throttle.last == {}


def test_each_arxiv_host_has_its_own_spacing() -> None:
    clock = FakeClock()
    throttle = Throttle(3.0, clock=clock, sleep=clock.sleep)

    throttle.wait("https://rss.arxiv.org/rss/cs.AI")
    throttle.wait("https://export.arxiv.org/api/query")
    assert clock.sleeps == []

    throttle.wait("https://rss.arxiv.org/rss/cs.LG")
    assert clock.sleeps == [3.0]


def test_arxiv_host_is_matched_case_insensitively_and_with_a_port() -> None:
    clock = FakeClock()
    throttle = Throttle(3.0, clock=clock, sleep=clock.sleep)

    throttle.wait("https://RSS.arXiv.org/rss/cs.AI")
    throttle.wait("https://rss.arxiv.org:443/rss/cs.AI")

    assert clock.sleeps == [3.0]


# --------------------------------------------------------------------------------------------------------------------
# ingest: run_source / fetch_all over the loopback server and the real SQLite database
# --------------------------------------------------------------------------------------------------------------------


def arxiv_source(server: HTTPTestServer, name: str = "arxiv", path: str = "/rss/cs.AI") -> SourceConfig:
    return SourceConfig(name=name, kind=SourceKind.ARXIV_RSS, url=server.url(path))


def hf_source(
    server: HTTPTestServer, name: str = "hf", path: str = "/api/daily_papers", days_back: int = 1
) -> SourceConfig:
    return SourceConfig(name=name, kind=SourceKind.HF_JSON, url=server.url(path), days_back=days_back)


def with_sources(settings: Settings, *sources: SourceConfig) -> Settings:
    """Settings fetching only these sources (the arXiv enrichment off: tests/test_enrich.py has it)."""
    return settings.model_copy(update={"sources": list(sources), "arxiv_api_url": ""})


def test_a_good_source_stores_papers_and_records_success(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    http_server.feed("/rss/cs.AI", ARXIV_RSS, etag=ETAG, last_modified=LAST_MODIFIED)

    [report] = fetch_all(session, with_sources(settings, arxiv_source(http_server)), NOW)

    assert report == SourceReport(
        "arxiv",
        ok=True,
        new=38,
        updated=0,
        parsed=38,
        entries=40,
        not_modified=False,
        error=None,
        problems=["2204.08446: announce type 'replace'", "2412.14574: announce type 'replace'"],
    )
    assert count_papers(session) == 38
    paper = session.get(Paper, "2505.21471")
    assert paper is not None
    assert paper.title.startswith("Scaling External Knowledge Input Beyond Context Windows of LLMs")
    assert paper.sources == ["arxiv"]
    assert paper.first_seen == NOW
    assert session.get(Paper, "2204.08446") is None  # a replacement, skipped
    state = state_of(engine, "arxiv")
    assert state.last_success == NOW
    assert state.last_attempt == NOW
    assert state.etag == ETAG
    assert state.last_modified == LAST_MODIFIED
    assert state.last_error is None
    assert state.consecutive_failures == 0
    assert state.not_before is None
    assert state.papers_last_run == 38


def test_rerun_answered_with_304_adds_nothing_and_is_not_a_failure(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    http_server.feed("/rss/cs.AI", ARXIV_RSS, etag=ETAG, last_modified=LAST_MODIFIED)
    settings = with_sources(settings, arxiv_source(http_server))
    fetch_all(session, settings, NOW)
    later = NOW + timedelta(hours=1)

    with open_session(engine) as second_run:
        [report] = fetch_all(second_run, settings, later)

    assert report.ok is True
    assert report.not_modified is True
    assert (report.new, report.updated, report.entries, report.error) == (0, 0, 0, None)
    conditional = http_server.requests[1]
    assert conditional.headers.get("If-None-Match") == ETAG
    assert conditional.headers.get("If-Modified-Since") == LAST_MODIFIED
    assert count_papers(session) == 38
    state = state_of(engine, "arxiv")
    assert state.last_success == later
    assert state.consecutive_failures == 0
    assert state.last_error is None
    assert state.etag == ETAG  # kept: a 304 carries nothing new
    assert state.last_modified == LAST_MODIFIED
    assert state.papers_last_run == 0


def test_run_source_directly_with_the_real_client(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine, client: httpx.Client
) -> None:
    http_server.route("/api/daily_papers", HF_JSON, headers={"Content-Type": "application/json"})
    source = hf_source(http_server, days_back=0)

    report = run_source(session, client, source, settings, Throttle(0.0), NOW)

    assert (report.ok, report.new, report.parsed, report.entries) == (True, 29, 29, 30)
    assert report.problems == ["2410.18959: withdrawn"]
    assert count_papers(session) == 29
    assert state_of(engine, "hf").last_success == NOW


def test_failing_sources_are_recorded_and_never_stop_the_others(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    http_server.route("/broken", b"Internal Server Error", status=500)
    http_server.route("/garbage", b"\x00\xff\xfe not a feed \x89PNG\r\n")
    http_server.route("/garbage.json", b"<html>maintenance</html>")
    http_server.route("/api/daily_papers", HF_JSON)
    settings = with_sources(
        settings,
        arxiv_source(http_server, "broken", "/broken"),
        arxiv_source(http_server, "garbage", "/garbage"),
        hf_source(http_server, "garbage-json", "/garbage.json", days_back=0),
        hf_source(http_server, "good", days_back=0),
    )

    reports = fetch_all(session, settings, NOW)

    assert [(r.name, r.ok) for r in reports] == [
        ("broken", False),
        ("garbage", False),
        ("garbage-json", False),
        ("good", True),
    ]
    assert reports[0].error == "HTTP 500"
    assert (reports[1].error or "").startswith("not a readable feed: ")
    assert (reports[2].error or "").startswith("not JSON: ")
    assert reports[3].new == 29
    assert count_papers(session) == 29
    assert http_server.paths() == ["/broken", "/garbage", "/garbage.json", "/api/daily_papers"]
    for name, error in [
        ("broken", reports[0].error),
        ("garbage", reports[1].error),
        ("garbage-json", reports[2].error),
    ]:
        state = state_of(engine, name)
        assert state.last_error == error
        assert state.consecutive_failures == 1
        assert state.last_success is None
        assert state.last_attempt == NOW
        assert state.not_before is None
        assert state.etag is None
    assert state_of(engine, "good").consecutive_failures == 0

    with open_session(engine) as second_run:
        again = fetch_all(second_run, settings, NOW + timedelta(hours=1))

    assert [r.ok for r in again] == [False, False, False, True]
    assert state_of(engine, "broken").consecutive_failures == 2
    assert state_of(engine, "garbage").consecutive_failures == 2
    assert state_of(engine, "garbage-json").consecutive_failures == 2
    assert state_of(engine, "good").consecutive_failures == 0
    assert state_of(engine, "good").last_success == NOW + timedelta(hours=1)


def test_a_source_that_recovers_resets_its_failures(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    http_server.route("/rss/cs.AI", status=500)
    settings = with_sources(settings, arxiv_source(http_server))
    fetch_all(session, settings, NOW)
    with open_session(engine) as second_run:
        fetch_all(second_run, settings, NOW + timedelta(hours=1))
    assert state_of(engine, "arxiv").consecutive_failures == 2

    http_server.route("/rss/cs.AI", ARXIV_RSS, headers={"ETag": ETAG})
    with open_session(engine) as third_run:
        [report] = fetch_all(third_run, settings, NOW + timedelta(hours=2))

    assert (report.ok, report.new) == (True, 38)
    state = state_of(engine, "arxiv")
    assert state.consecutive_failures == 0
    assert state.last_error is None
    assert state.last_success == NOW + timedelta(hours=2)
    assert state.etag == ETAG


@pytest.mark.parametrize(
    ("kind", "body"),
    [(SourceKind.ARXIV_RSS, EMPTY_RSS), (SourceKind.RSS, EMPTY_RSS), (SourceKind.HF_JSON, b"[]")],
    ids=["arxiv-rss", "rss", "hf-json"],
)
def test_an_empty_but_valid_feed_is_a_healthy_run(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine, kind: SourceKind, body: bytes
) -> None:
    # arXiv lists nothing at weekends and on holidays; Hugging Face has empty days.
    http_server.route("/empty", body)
    source = SourceConfig(name="empty", kind=kind, url=http_server.url("/empty"), days_back=0)

    for hours in range(4):  # more runs than it takes to flag a failing source
        with open_session(engine) as run:
            [report] = fetch_all(run, with_sources(settings, source), NOW + timedelta(hours=hours))
        assert (report.ok, report.error, report.new, report.entries) == (True, None, 0, 0)
    state = state_of(engine, "empty")
    assert (state.last_error, state.consecutive_failures) == (None, 0)
    assert state.last_success == NOW + timedelta(hours=3)


def test_bytes_that_are_no_feed_still_count_as_a_failure(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    http_server.route("/rss/cs.AI", b"<html><body>Service Unavailable</body></html>")
    [report] = fetch_all(session, with_sources(settings, arxiv_source(http_server)), NOW)
    assert report.ok is False and (report.error or "").startswith("not a readable feed")
    assert state_of(engine, "arxiv").consecutive_failures == 1


def test_after_a_429_the_source_is_not_requested_until_not_before(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    http_server.route("/rss/cs.AI", b"Too Many Requests", status=429, headers={"Retry-After": "3600"})
    http_server.route("/api/daily_papers", HF_JSON)
    settings = with_sources(settings, arxiv_source(http_server), hf_source(http_server, days_back=0))

    [limited, other] = fetch_all(session, settings, NOW)

    assert (limited.ok, limited.error) == (False, "HTTP 429")
    assert other.ok is True
    state = state_of(engine, "arxiv")
    assert state.not_before == NOW + timedelta(hours=1)
    assert state.last_error == "HTTP 429"
    assert state.consecutive_failures == 1
    assert http_server.paths() == ["/rss/cs.AI", "/api/daily_papers"]

    # Half an hour later: arXiv is skipped without a request; the other source is still fetched.
    with open_session(engine) as second_run:
        [skipped, other] = fetch_all(second_run, settings, NOW + timedelta(minutes=30))

    assert skipped.ok is False
    assert skipped.error == "waiting until 10:00 UTC (server asked us to retry later)"
    assert other.ok is True
    assert http_server.paths() == ["/rss/cs.AI", "/api/daily_papers", "/api/daily_papers"]
    state = state_of(engine, "arxiv")
    assert state.last_attempt == NOW
    assert state.consecutive_failures == 1
    assert state.not_before == NOW + timedelta(hours=1)

    # Once not_before has passed it is fetched again, and success clears the back-off.
    http_server.route("/rss/cs.AI", ARXIV_RSS)
    with open_session(engine) as third_run:
        [recovered] = fetch_all(third_run, settings, NOW + timedelta(hours=1, minutes=1), only="arxiv")

    # 13 of the listing's 38 papers were already stored from the HF source in the earlier runs.
    assert (recovered.ok, recovered.parsed, recovered.new, recovered.updated) == (True, 38, 25, 13)
    assert http_server.paths()[-1] == "/rss/cs.AI"
    assert len(http_server.requests_to("/rss/cs.AI")) == 2
    state = state_of(engine, "arxiv")
    assert state.not_before is None
    assert state.consecutive_failures == 0
    assert state.last_success == NOW + timedelta(hours=1, minutes=1)


def test_a_503_with_an_http_date_sets_not_before(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    back_at = NOW + timedelta(minutes=90)
    http_server.route("/rss/cs.AI", status=503, headers={"Retry-After": http_date(back_at)})

    [report] = fetch_all(session, with_sources(settings, arxiv_source(http_server)), NOW)

    assert (report.ok, report.error) == (False, "HTTP 503")
    assert state_of(engine, "arxiv").not_before == back_at


def test_a_dated_source_requests_today_and_yesterday(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    # NOW is 2026-11-30 09:00 UTC. Today's list has the first 15 items, yesterday's the other 15.
    http_server.feed("/api/daily_papers?date=2026-11-30", json.dumps(HF_ITEMS[:15]), etag='"today"')
    http_server.route("/api/daily_papers?date=2026-11-29", json.dumps(HF_ITEMS[15:]), headers={"ETag": '"yesterday"'})
    source = hf_source(http_server, path="/api/daily_papers?date={date}")
    settings = with_sources(settings, source)

    [report] = fetch_all(session, settings, NOW)

    assert http_server.paths() == ["/api/daily_papers?date=2026-11-30", "/api/daily_papers?date=2026-11-29"]
    assert (report.ok, report.new, report.parsed, report.entries) == (True, 29, 29, 30)
    assert count_papers(session) == 29
    assert session.get(Paper, HF_ITEMS[0]["paper"]["id"]) is not None  # from today's list
    assert session.get(Paper, HF_ITEMS[-2]["paper"]["id"]) is not None  # from yesterday's list
    assert session.get(Paper, "2410.18959") is None  # yesterday's last item is withdrawn
    assert state_of(engine, "hf").etag == '"today"'  # the validators belong to the first (today's) URL

    # The next run sends them to today's URL only; yesterday's is fetched in full.
    with open_session(engine) as second_run:
        [again] = fetch_all(second_run, settings, NOW + timedelta(hours=1))

    today, yesterday = http_server.requests[2:]
    assert (today.path, today.headers.get("If-None-Match")) == ("/api/daily_papers?date=2026-11-30", '"today"')
    assert (yesterday.path, yesterday.headers.get("If-None-Match")) == ("/api/daily_papers?date=2026-11-29", None)
    assert (again.ok, again.not_modified, again.new, again.updated, again.entries) == (True, True, 0, 0, 15)


@pytest.mark.parametrize(
    ("days_back", "dates"),
    [(0, ["2026-11-30"]), (1, ["2026-11-30", "2026-11-29"]), (2, ["2026-11-30", "2026-11-29", "2026-11-28"])],
)
def test_source_urls_fill_in_the_dates(days_back: int, dates: list[str]) -> None:
    source = SourceConfig(
        name="hf", kind=SourceKind.HF_JSON, url="https://hf.example/api?date={date}", days_back=days_back
    )

    assert source_urls(source, NOW) == [f"https://hf.example/api?date={d}" for d in dates]


def test_source_urls_use_the_utc_date_just_after_midnight() -> None:
    source = SourceConfig(name="hf", kind=SourceKind.HF_JSON, url="https://hf.example/api?date={date}")

    assert source_urls(source, datetime(2026, 12, 1, 0, 5, tzinfo=UTC)) == [
        "https://hf.example/api?date=2026-12-01",
        "https://hf.example/api?date=2026-11-30",
    ]


def test_an_undated_source_has_one_url() -> None:
    source = SourceConfig(name="a", kind=SourceKind.ARXIV_RSS, url="https://rss.arxiv.org/rss/cs.AI", days_back=3)

    assert source_urls(source, NOW) == ["https://rss.arxiv.org/rss/cs.AI"]


def test_fetch_all_only_runs_the_named_source(
    http_server: HTTPTestServer, settings: Settings, session: Session
) -> None:
    http_server.route("/a", ARXIV_RSS)
    http_server.route("/b", HF_JSON)
    settings = with_sources(settings, arxiv_source(http_server, "a", "/a"), hf_source(http_server, "b", "/b", 0))

    reports = fetch_all(session, settings, NOW, only="b")

    assert [(r.name, r.ok, r.new) for r in reports] == [("b", True, 29)]
    assert http_server.paths() == ["/b"]


def test_a_slow_source_times_out_and_the_next_one_still_runs(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    http_server.hang("/slow", seconds=60)
    http_server.route("/api/daily_papers", HF_JSON)
    settings = with_sources(
        settings, arxiv_source(http_server, "slow", "/slow"), hf_source(http_server, days_back=0)
    ).model_copy(update={"fetch_timeout": 0.5})

    [slow, good] = fetch_all(session, settings, NOW)

    assert (slow.ok, slow.error) == (False, "timed out after 0.5s")
    assert (good.ok, good.new) == (True, 29)
    assert state_of(engine, "slow").last_error == "timed out after 0.5s"


# --------------------------------------------------------------------------------------------------------------------
# The test server itself (other test modules rely on it)
# --------------------------------------------------------------------------------------------------------------------


def test_server_routes_records_and_sequences(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.responses("/seq", Response(503, b"later"), Response(200, b"now"))
    http_server.route("/echo", handler=lambda request: Response(201, request.path.encode()))

    statuses = [client.get(http_server.url("/seq")).status_code for _ in range(3)]
    echo = client.get(http_server.url("/echo?x=1"), headers={"X-Probe": "yes"})

    assert statuses == [503, 200, 200]
    assert (echo.status_code, echo.content) == (201, b"/echo?x=1")
    last = http_server.requests[-1]
    assert (last.method, last.path, last.route, last.headers.get("x-probe")) == ("GET", "/echo?x=1", "/echo", "yes")
    assert len(http_server.requests_to("/seq")) == 3
    assert http_server.url("feed") == f"http://127.0.0.1:{http_server.port}/feed"


def test_server_reports_handler_crashes_as_500(http_server: HTTPTestServer, client: httpx.Client) -> None:
    def broken(_request: object) -> Response:
        raise RuntimeError("boom")

    http_server.route("/broken", handler=broken)

    response = client.get(http_server.url("/broken"))

    assert response.status_code == 500
    assert [str(e) for e in http_server.errors] == ["boom"]


@pytest.mark.parametrize(
    ("origin", "current", "target", "problem"),
    [
        ("https://feeds.example.org/a", "https://feeds.example.org/a", "https://93.184.216.34/b", None),
        ("https://feeds.example.org/a", "https://feeds.example.org/a", "http://93.184.216.34/b", "https to http"),
        ("http://feeds.example.org/a", "http://feeds.example.org/a", "https://93.184.216.34/b", None),
        ("https://feeds.example.org/a", "https://feeds.example.org/a", "https://127.0.0.1/admin", "not a public"),
        ("https://feeds.example.org/a", "https://feeds.example.org/a", "https://localhost:6379/", "not a public"),
        ("https://feeds.example.org/a", "https://feeds.example.org/a", "https://[::1]/x", "not a public"),
        (
            "https://feeds.example.org/a",
            "https://feeds.example.org/a",
            "http://169.254.169.254/latest",
            "https to http",
        ),
        ("http://feeds.example.org/a", "http://feeds.example.org/a", "http://169.254.169.254/latest", "not a public"),
        ("http://feeds.example.org/a", "http://feeds.example.org/a", "http://10.0.0.7/", "not a public"),
        ("http://feeds.example.org/a", "http://feeds.example.org/a", "http://192.168.1.1/", "not a public"),
        ("http://feeds.example.org/a", "http://feeds.example.org/a", "http://[fd00::1]/", "not a public"),
        ("http://feeds.example.org/a", "http://feeds.example.org/a", "file:///etc/passwd", "not an http(s) URL"),
        ("http://feeds.example.org/a", "http://feeds.example.org/a", "gopher://93.184.216.34/", "not an http(s) URL"),
        # A feed configured on this machine or a private network may redirect within it (tests, intranets).
        ("http://127.0.0.1:8080/a", "http://127.0.0.1:8080/a", "http://127.0.0.1:8081/b", None),
        ("http://10.0.0.5/feed", "http://10.0.0.5/feed", "http://10.0.0.6/feed", None),
        ("https://127.0.0.1/a", "https://127.0.0.1/a", "http://127.0.0.1/b", "https to http"),
    ],
)
def test_which_redirects_a_feed_may_follow(origin: str, current: str, target: str, problem: str | None) -> None:
    found = redirect_problem(origin, current, target)
    assert (found is None) if problem is None else (found is not None and problem in found), found


def test_a_redirect_to_a_private_address_is_refused_for_a_public_feed(
    http_server: HTTPTestServer, client: httpx.Client
) -> None:
    # The real server is on loopback; judged as if it had been configured under a public name, its
    # redirect to another loopback port (say, Redis) is refused before any request goes there.
    http_server.redirect("/feed", "http://127.0.0.1:6379/")

    fetched = fetch(client, http_server.url("/feed"), now=NOW, origin="http://feeds.example.org/feed")

    assert (fetched.status, fetched.error) == ("error", "redirect to '127.0.0.1' refused: not a public address")
    assert http_server.paths() == ["/feed"]


def test_a_redirect_to_another_scheme_is_refused(http_server: HTTPTestServer, client: httpx.Client) -> None:
    http_server.redirect("/feed", "file:///etc/passwd")

    fetched = fetch(client, http_server.url("/feed"), now=NOW)

    assert fetched.status == "error" and "not an http(s) URL" in (fetched.error or "")
