"""arXiv enrichment over real HTTP: Hugging Face's papers, then one batched arXiv API query per run.

A loopback server plays both Hugging Face (the saved daily-papers fixture) and the arXiv API (a saved
Atom answer); papers land in the real database and are matched with the real index.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digest import health, match
from digest.config import Settings, SourceConfig, SourceKind
from digest.db import open_session
from digest.enrich import ENRICH_NAME
from digest.ingest import SourceReport, fetch_all, store_papers
from digest.match import PaperIndex, PaperRecord
from digest.models import Paper, SourceState
from digest.parse import ParsedPaper, parse_hf_json
from tests.conftest import FIXTURES, NOW, free_port
from tests.httpserver import HTTPTestServer, Request, Response, http_server_fixture  # noqa: F401  (the fixture)

HF_DAY = (FIXTURES / "feed-hf.json").read_bytes()  # 5 items: 4 papers, one withdrawn
HF_PAPERS = {paper.id: paper for paper in parse_hf_json(HF_DAY).papers}
ANSWER = (FIXTURES / "arxiv_api" / "hf-papers.xml").read_bytes()  # arXiv knows 3 of the 4, not 2509.54410
ERROR_ANSWER = (FIXTURES / "arxiv_api" / "error.xml").read_bytes()
UNKNOWN = "2509.54410"
API = "/api/query"


def configure(settings: Settings, server: HTTPTestServer, api_url: str | None = None) -> Settings:
    """Hugging Face's dated list and the arXiv API, both on the loopback server."""
    server.route("/api/daily_papers?date=2026-11-30", HF_DAY, headers={"Content-Type": "application/json"})
    source = SourceConfig(
        name="hf", kind=SourceKind.HF_JSON, url=server.url("/api/daily_papers?date={date}"), days_back=0
    )
    return settings.model_copy(update={"sources": [source], "arxiv_api_url": api_url or server.url(API)})


def run(engine: Engine, settings: Settings, when: datetime, only: str | None = None) -> dict[str, SourceReport]:
    """One fetch run in its own session, as the CLI or the worker does; its reports by name."""
    with open_session(engine) as session:
        return {report.name: report for report in fetch_all(session, settings, when, only)}


def stored(engine: Engine) -> dict[str, Paper]:
    with Session(engine) as fresh:
        return {paper.id: paper for paper in fresh.exec(select(Paper))}


def matching(engine: Engine, topic: str) -> set[str]:
    """The stored papers a reader with this one topic would be sent, through the real index."""
    with Session(engine) as fresh:
        index = PaperIndex([PaperRecord.of(paper) for paper in fresh.exec(select(Paper))])
    return {m.paper.id for m in match.select(index, [topic], candidates=index.all, cap=100).matches}


def asked(request: Request) -> list[str]:
    """The ids one arXiv API request asked for."""
    query = parse_qs(urlsplit(request.path).query)
    assert query["max_results"] == [str(len(query["id_list"][0].split(",")))]
    return query["id_list"][0].split(",")


def enrich_state(engine: Engine) -> SourceState | None:
    with Session(engine) as fresh:
        return fresh.get(SourceState, ENRICH_NAME)


def assert_as_hf_gave(engine: Engine) -> None:
    """Every paper as Hugging Face alone described it, still waiting for arXiv."""
    for pid, row in stored(engine).items():
        assert (row.categories, row.authors, row.needs_arxiv) == ([], HF_PAPERS[pid].authors, True), pid
    assert matching(engine, "cat:cs.CL") == set()


def test_one_request_gives_hf_only_papers_arxivs_categories_and_authors(
    http_server: HTTPTestServer, settings: Settings, engine: Engine
) -> None:
    http_server.route(API, ANSWER, headers={"Content-Type": "application/atom+xml"})
    settings = configure(settings, http_server)

    reports = run(engine, settings, NOW)

    assert (reports["hf"].ok, reports["hf"].new) == (True, 4)
    assert (reports[ENRICH_NAME].ok, reports[ENRICH_NAME].updated, reports[ENRICH_NAME].error) == (True, 3, None)
    [request] = http_server.requests_to(API)
    rows = stored(engine)
    assert sorted(asked(request)) == sorted(pid for pid, row in rows.items() if row.on_hf) == sorted(HF_PAPERS)
    # Readers' category and author topics now find the papers only Hugging Face had announced.
    assert matching(engine, "cat:cs.CL") == {"2507.48843", "2505.53648"}
    assert matching(engine, "cat:cs.LG") == {"2506.87888"}
    assert matching(engine, 'author:"Wen Okafor"') == {"2507.48843"}  # listed by arXiv only
    assert matching(engine, 'author:"Sakura Ito"') == {"2506.87888"}
    assert rows["2506.87888"].categories == ["cs.AI", "cs.LG"]  # arXiv's primary category first
    for pid, row in rows.items():  # what Hugging Face said stays: title, abstract, upvotes
        hf = HF_PAPERS[pid]
        assert (row.title, row.abstract, row.upvotes, row.needs_arxiv) == (hf.title, hf.abstract, hf.upvotes, False)
    # A paper arXiv did not answer for keeps Hugging Face's authors and is not asked again.
    assert (rows[UNKNOWN].authors, rows[UNKNOWN].categories) == (HF_PAPERS[UNKNOWN].authors, [])
    assert rows[UNKNOWN].updated_at == NOW

    again = run(engine, settings, NOW + timedelta(hours=1))

    assert list(again) == ["hf"]  # nothing waited: no enrichment line, no request
    assert len(http_server.requests_to(API)) == 1
    assert {pid: row.model_dump() for pid, row in stored(engine).items()} == {
        pid: row.model_dump() for pid, row in rows.items()
    }


def test_a_503_with_retry_after_is_honoured_and_the_papers_wait(
    http_server: HTTPTestServer, settings: Settings, engine: Engine
) -> None:
    http_server.responses(API, Response(503, b"Service Unavailable", {"Retry-After": "120"}), Response(200, ANSWER))
    settings = configure(settings, http_server)

    first = run(engine, settings, NOW)

    assert first["hf"].ok and first["hf"].new == 4
    assert not first[ENRICH_NAME].ok
    assert first[ENRICH_NAME].error == "HTTP 503; 4 papers left for the next run"
    assert_as_hf_gave(engine)
    state = enrich_state(engine)
    assert state is not None and state.not_before == NOW + timedelta(seconds=120)
    # `digest status` lists the back-off after the configured sources, and never flags it as failing.
    with open_session(engine) as session:
        sources = health.source_health(session, settings)
    assert [(s.name, s.flagged, s.last_error) for s in sources] == [
        ("hf", False, None),
        (ENRICH_NAME, False, first[ENRICH_NAME].error),
    ]

    # A minute later: no request; the report says why.
    waiting = run(engine, settings, NOW + timedelta(minutes=1))
    assert len(http_server.requests_to(API)) == 1
    assert waiting[ENRICH_NAME].error == (
        "waiting until 09:02 UTC (server asked us to retry later); 4 papers left for a later run"
    )
    assert_as_hf_gave(engine)

    # Once the time has passed: asked again, answered, the back-off cleared.
    later = NOW + timedelta(minutes=3)
    done = run(engine, settings, later)
    assert (done[ENRICH_NAME].ok, done[ENRICH_NAME].updated) == (True, 3)
    [_, retried] = http_server.requests_to(API)
    assert sorted(asked(retried)) == sorted(HF_PAPERS)
    assert matching(engine, "cat:cs.CL") == {"2507.48843", "2505.53648"}
    state = enrich_state(engine)
    assert state is not None and (state.not_before, state.last_error, state.last_success) == (None, None, later)


def test_a_dead_arxiv_api_keeps_hfs_papers_and_is_retried_next_run(
    http_server: HTTPTestServer, settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    http_server.route(API, ANSWER)
    dead = configure(settings, http_server, api_url=f"http://127.0.0.1:{free_port()}{API}")

    with caplog.at_level(logging.WARNING, logger="digest.enrich"):
        reports = run(engine, dead, NOW)

    assert (reports["hf"].ok, reports["hf"].new) == (True, 4)
    error = reports[ENRICH_NAME].error or ""
    assert not reports[ENRICH_NAME].ok and "Connection refused" in error
    assert error.endswith("; 4 papers left for the next run")
    assert [r.getMessage() for r in caplog.records] == [f"arXiv enrichment failed: {error}"]
    assert set(stored(engine)) == set(HF_PAPERS)
    assert_as_hf_gave(engine)
    assert enrich_state(engine) is None  # nothing to wait for: no state row

    retried = run(engine, configure(settings, http_server), NOW + timedelta(hours=1))

    assert retried[ENRICH_NAME].ok
    [request] = http_server.requests_to(API)
    assert sorted(asked(request)) == sorted(HF_PAPERS)
    assert matching(engine, 'author:"Wen Okafor"') == {"2507.48843"}


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        pytest.param(Response(500, b"Internal Server Error"), "HTTP 500", id="5xx"),
        pytest.param(Response(429, b"Too Many Requests"), "HTTP 429", id="429 without Retry-After"),
        pytest.param(
            Response(200, b"<html><body>Service Unavailable</body></html>"),
            "the answer is not an arXiv Atom feed: not a readable feed",
            id="html",
        ),
        pytest.param(Response(200, b'{"error": "rate limited"}'), "the answer is not an arXiv Atom feed", id="json"),
        pytest.param(Response(200, ERROR_ANSWER), "arXiv API error: incorrect id format for 2507.4884", id="api error"),
    ],
)
def test_a_failed_answer_changes_no_paper(
    http_server: HTTPTestServer, settings: Settings, engine: Engine, answer: Response, error: str
) -> None:
    http_server.responses(API, answer, Response(200, ANSWER))
    settings = configure(settings, http_server)

    reports = run(engine, settings, NOW)

    assert not reports[ENRICH_NAME].ok
    assert (reports[ENRICH_NAME].error or "").startswith(error)
    assert_as_hf_gave(engine)
    assert enrich_state(engine) is None

    assert run(engine, settings, NOW + timedelta(hours=1))[ENRICH_NAME].ok
    assert len(http_server.requests_to(API)) == 2
    assert matching(engine, "cat:cs.CL") == {"2507.48843", "2505.53648"}


def test_an_answer_cut_short_describes_what_arrived_and_the_rest_wait(
    http_server: HTTPTestServer, settings: Settings, engine: Engine
) -> None:
    cut = ANSWER[: ANSWER.index(b"<entry>", ANSWER.index(b"<entry>") + 1) + 40]  # inside the second entry
    http_server.responses(API, Response(200, cut), Response(200, ANSWER))
    settings = configure(settings, http_server)

    reports = run(engine, settings, NOW)

    assert (reports[ENRICH_NAME].ok, reports[ENRICH_NAME].updated) == (True, 1)
    rows = stored(engine)
    assert [pid for pid, row in rows.items() if not row.needs_arxiv] == ["2507.48843"]
    run(engine, settings, NOW + timedelta(hours=1))
    [_, second] = http_server.requests_to(API)
    assert sorted(asked(second)) == sorted(set(HF_PAPERS) - {"2507.48843"})
    assert not any(row.needs_arxiv for row in stored(engine).values())


def test_the_newest_papers_are_asked_first_in_batches(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    for hours, paper in enumerate(HF_PAPERS.values()):  # announced an hour apart
        store_papers(session, [paper], "hf", NOW - timedelta(hours=4 - hours))
    http_server.route(API, ANSWER)
    settings = settings.model_copy(update={"arxiv_api_url": http_server.url(API), "arxiv_enrich_batch": 2})
    newest_first = sorted(HF_PAPERS, key=lambda pid: stored(engine)[pid].first_seen, reverse=True)

    run(engine, settings, NOW)
    # The answer holds more papers than were asked: only the asked ones are taken.
    assert {pid for pid, row in stored(engine).items() if row.needs_arxiv} == set(newest_first[2:])
    run(engine, settings, NOW + timedelta(hours=1))
    reports = run(engine, settings, NOW + timedelta(hours=2))

    assert [asked(r) for r in http_server.requests_to(API)] == [newest_first[:2], newest_first[2:]]
    assert reports == {}  # no source configured, nothing left to ask
    assert not any(row.needs_arxiv for row in stored(engine).values())


def test_ids_that_are_not_arxivs_are_never_sent(
    http_server: HTTPTestServer, settings: Settings, session: Session, engine: Engine
) -> None:
    odd = ParsedPaper(
        id="hf-space-7f3a", title="A paper page without an arXiv id", abstract="", authors=["Ada Lovelace"],
        categories=[], published=None, abs_url="https://huggingface.co/papers/hf-space-7f3a", pdf_url=None,
        upvotes=2, on_hf=True,
    )  # fmt: skip
    store_papers(session, [odd], "hf-import", NOW - timedelta(hours=1))
    http_server.route(API, ANSWER)
    settings = configure(settings, http_server)

    run(engine, settings, NOW)

    [request] = http_server.requests_to(API)
    assert sorted(asked(request)) == sorted(HF_PAPERS)
    row = stored(engine)["hf-space-7f3a"]
    assert (row.needs_arxiv, row.authors) == (False, ["Ada Lovelace"])


def test_a_run_of_one_named_source_leaves_enrichment_to_the_next_full_run(
    http_server: HTTPTestServer, settings: Settings, engine: Engine
) -> None:
    http_server.route(API, ANSWER)
    settings = configure(settings, http_server)

    assert list(run(engine, settings, NOW, only="hf")) == ["hf"]
    assert http_server.requests_to(API) == []
    assert_as_hf_gave(engine)

    assert run(engine, settings, NOW + timedelta(hours=1))[ENRICH_NAME].ok
    assert matching(engine, "cat:cs.CL") == {"2507.48843", "2505.53648"}
