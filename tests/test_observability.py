"""Operators' view: Prometheus metrics, structured logs with run ids, health and readiness."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine
from sqlmodel import Session

from digest import logs
from digest.config import Settings, SourceConfig, SourceKind
from digest.pipeline import run_send
from digest.send import OutboxTransport
from digest.suppress import suppress
from digest.web.app import create_app
from tests.conftest import NOW, free_port
from tests.factories import add_papers, paper, subscriber
from tests.httpserver import HTTPTestServer, http_server_fixture  # noqa: F401

JOINED = NOW - timedelta(days=30)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_reflect_the_database(
    session: Session, settings: Settings, engine: Engine, http_server: HTTPTestServer
) -> None:
    from digest.config import PROJECT_ROOT
    from digest.ingest import fetch_all

    http_server.route("/feed.rss", (PROJECT_ROOT / "digest/samples/arxiv-listing.rss").read_bytes())
    http_server.route("/broken.rss", b"not a feed", status=500)
    sources = [
        SourceConfig(name="arxiv", kind=SourceKind.ARXIV_RSS, url=http_server.url("/feed.rss")),
        SourceConfig(name="broken", kind=SourceKind.RSS, url=http_server.url("/broken.rss")),
    ]
    settings = settings.model_copy(update={"sources": sources, "metrics_token": "m" * 40})
    fetch_all(session, settings, NOW - timedelta(hours=2))
    add_papers(session, paper("2611.90001", "Agents that cache", first_seen=NOW - timedelta(hours=1)))
    for n in range(3):
        subscriber(session, f"r{n}@example.org", ["agents"], joined=JOINED)
    run_send(session, settings, OutboxTransport(settings.outbox_dir), NOW)
    suppress(session, "bounced@example.org", "hard bounce", NOW)

    with TestClient(create_app(settings, engine=engine, clock=lambda: NOW, send_in_process=False)) as client:
        response = client.get("/metrics", headers={"Authorization": f"Bearer {'m' * 40}"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    got = _samples(response.text)
    assert got[("digest_papers_ingested_total", (("source", "arxiv"),))] == 38
    assert got[("digest_source_failures_total", (("source", "broken"),))] == 1
    assert got[("digest_source_consecutive_failures", (("source", "broken"),))] == 1
    assert got[("digest_deliveries", (("status", "sent"),))] == 3
    assert got[("digest_suppressed_addresses", ())] == 1
    assert got[("digest_send_latency_seconds_gcount", ())] == 3  # sent in the last hour
    assert got[("digest_send_latency_seconds_bucket", (("le", "+Inf"),))] == 3


def test_json_logs_carry_the_run_and_never_a_full_address() -> None:
    out = io.StringIO()
    logs.configure(logging.INFO, json_lines=True, stream=out)
    try:
        run = logs.new_run("test")
        logging.getLogger("digest.test").info("digest sent to %s", "ada.lovelace@example.org")
        logging.getLogger("digest.test").warning("bounce from %s", "grace@example.org")
    finally:
        logs.configure(logging.WARNING)
    info, warning = (json.loads(line) for line in out.getvalue().splitlines())
    assert info["run_id"] == run and info["level"] == "info"
    assert info["message"] == "digest sent to a…@example.org"
    assert "ada.lovelace" not in out.getvalue().split("\n")[0]
    assert warning["message"] == "bounce from grace@example.org"  # warnings keep what operators act on


def test_a_whole_send_run_logs_no_address_at_info(session: Session, settings: Settings) -> None:
    add_papers(session, paper("2611.90001", "Agents that cache", first_seen=NOW - timedelta(hours=1)))
    subscriber(session, "secret.reader@example.org", ["agents"], joined=JOINED)
    out = io.StringIO()
    logs.configure(logging.DEBUG, json_lines=True, stream=out)
    try:
        logs.new_run("send")
        run_send(session, settings, OutboxTransport(settings.outbox_dir), NOW)
    finally:
        logs.configure(logging.WARNING)
    assert "secret.reader@example.org" not in out.getvalue()


def test_readiness_reports_an_unreachable_broker(settings: Settings, engine: Engine) -> None:
    broken = settings.model_copy(update={"broker_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(create_app(broken, engine=engine, send_in_process=False)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["database"] == "ok" and ready.json()["broker"].startswith("error")


@pytest.mark.parametrize(
    ("line", "logged"),
    [
        (
            '127.0.0.1:5 - "GET /manage/eyJzIjo.Z1x.SiG HTTP/1.1" 200',
            '127.0.0.1:5 - "GET /manage/[token] HTTP/1.1" 200',
        ),
        ("POST /api/unsubscribe/eyJ.ab-c_d?x=1", "POST /api/unsubscribe/[token]?x=1"),
        ("GET /confirm/abc/", "GET /confirm/[token]/"),
        ("GET /static/app.css", "GET /static/app.css"),
    ],
)
def test_link_tokens_never_reach_the_logs(line: str, logged: str) -> None:
    out = io.StringIO()
    logs.configure(logging.INFO, stream=out)
    logging.getLogger("uvicorn.access").warning("%s", line)  # at any level, with the path as an argument
    assert out.getvalue().rstrip("\n").endswith(logged)
