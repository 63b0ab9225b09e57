"""The `digest` command as users run it: a real process, real files, one clear line on errors."""

from __future__ import annotations

import email
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from email import policy
from pathlib import Path

import pytest

from digest.cli import with_trending_values
from digest.config import PROJECT_ROOT
from tests.conftest import FreshDatabase

DIGEST = [sys.executable, "-m", "digest"]
SAMPLES = PROJECT_ROOT / "digest" / "samples"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run(tmp_path: Path, fresh_database: FreshDatabase) -> Run:
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    base_env.update(
        DIGEST_DATABASE_URL=fresh_database("cli"),
        DIGEST_OUTBOX_DIR=str(tmp_path / "outbox"),
        DIGEST_SECRET_KEY="cli-test-secret-key-of-32-bytes-at-least",
        DIGEST_BASE_URL="https://digest.example.org",
        DIGEST_SOURCES="[]",
        COLUMNS="200",
    )

    def call(*args: str, ok: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*DIGEST, *args], cwd=tmp_path, env={**base_env, **(env or {})}, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert "Traceback" not in result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, result.stderr
        return result

    return call


def _error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_fetch_file_then_papers_json(run: Run) -> None:
    out = run("fetch", "--file", str(SAMPLES / "arxiv-listing.rss"), "--kind", "arxiv-rss").stdout
    assert "38 papers parsed, 38 new, 0 updated, 2 skipped" in out
    again = run("fetch", "--file", str(SAMPLES / "arxiv-listing.rss"), "--kind", "arxiv-rss").stdout
    assert "0 new, 0 updated" in again
    run("fetch", "--file", str(SAMPLES / "hf-daily-papers.json"), "--kind", "hf-json", "--source", "hf")
    papers = json.loads(run("papers", "--json").stdout)
    # HF has 30 papers: 13 also in the listing, 1 withdrawn, 16 new (2 were only "replace" in the listing).
    assert isinstance(papers, list) and len(papers) == 38 + 16
    keys = {"id", "title", "authors", "abstract", "categories", "published", "url", "pdf_url", "upvotes", "sources"}
    assert all(set(p) == keys for p in papers)
    merged = [p for p in papers if len(p["sources"]) == 2]
    assert merged and all(p["categories"] and p["upvotes"] is not None for p in merged)
    one = next(p for p in papers if p["id"] == "2505.21471")
    assert one["url"] == "https://arxiv.org/abs/2505.21471" and one["pdf_url"] == "https://arxiv.org/pdf/2505.21471"
    assert one["title"].startswith("Scaling External Knowledge Input")
    assert isinstance(one["authors"], list) and one["published"].startswith("2025-11-04")


def test_subscribe_list_unsubscribe(run: Run) -> None:
    out = run(
        "subscribe", "Ada@Example.ORG", "--topic", '"long context"', "--topic", "cat:cs.CL", "--tz", "Europe/Paris"
    )
    assert "ada@example.org is subscribed" in out.stdout
    subs = json.loads(run("subscribers", "--json").stdout)
    assert subs == [
        {
            "email": "ada@example.org",
            "status": "active",
            "topics": ['"long context"', "cat:cs.CL"],
            "frequency": "daily",
            "send_hour": 8,
            "timezone": "Europe/Paris",
            "min_upvotes": None,
            "max_papers": 25,
            "trending": None,
        }
    ]
    assert "is now unsubscribed" in run("unsubscribe", "ADA@example.org").stdout
    assert "was already unsubscribed" in run("unsubscribe", "ada@example.org").stdout
    assert json.loads(run("subscribers", "--json").stdout)[0]["status"] == "unsubscribed"


SUBSCRIBED = "ada@example.org is subscribed (daily, 08:00 UTC) to"


@pytest.mark.parametrize(
    ("options", "said", "stored"),
    [
        ([], f"{SUBSCRIBED} the trending papers (top 10)", ([], 10)),  # no topic: the trending papers
        (["--trending"], f"{SUBSCRIBED} the trending papers (top 10)", ([], 10)),
        (["--trending", "5"], f"{SUBSCRIBED} the trending papers (top 5)", ([], 5)),
        (["--trending=7"], f"{SUBSCRIBED} the trending papers (top 7)", ([], 7)),
        (["-t", "agents", "--trending"], f"{SUBSCRIBED}: agents; plus the trending papers (top 10)", (["agents"], 10)),
        (["--trending", "-t", "agents", "-t", "rag"], f"{SUBSCRIBED}: agents; rag; plus the trending papers (top 10)",
         (["agents", "rag"], 10)),
        (["--trending", "3", "--topic", "agents"], f"{SUBSCRIBED}: agents; plus the trending papers (top 3)",
         (["agents"], 3)),
        (["-t", "agents"], f"{SUBSCRIBED}: agents", (["agents"], None)),
    ],
)  # fmt: skip
def test_subscribe_to_the_trending_papers(
    run: Run, options: list[str], said: str, stored: tuple[list[str], int | None]
) -> None:
    out = run("subscribe", "ada@example.org", *options).stdout
    assert out.strip() == said
    [sub] = json.loads(run("subscribers", "--json").stdout)
    assert (sub["topics"], sub["trending"]) == stored
    table = run("subscribers").stdout
    assert "trending" in table.splitlines()[1]  # the header
    assert (f"top {stored[1]}" in table) is (stored[1] is not None)


def test_trending_before_the_address_takes_the_default(run: Run) -> None:
    assert "the trending papers (top 10)" in run("subscribe", "--trending", "ada@example.org").stdout


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["subscribe", "a@b.org", "--trending"], ["subscribe", "a@b.org", "--trending", "10"]),
        (["subscribe", "a@b.org", "--trending", "5"], ["subscribe", "a@b.org", "--trending", "5"]),
        (["subscribe", "--trending", "a@b.org"], ["subscribe", "--trending", "10", "a@b.org"]),
        (["-v", "subscribe", "a@b.org", "--trending", "--cap", "3"],
         ["-v", "subscribe", "a@b.org", "--trending", "10", "--cap", "3"]),
        (["subscribe", "a@b.org", "--trending", "-t", "x"], ["subscribe", "a@b.org", "--trending", "10", "-t", "x"]),
        (["subscribe", "a@b.org", "-t", "--trending"], ["subscribe", "a@b.org", "-t", "--trending"]),  # a topic
        (["subscribe", "a@b.org", "--trending", "-5"], ["subscribe", "a@b.org", "--trending", "-5"]),  # refused later
        (["subscribe", "a@b.org", "--trending=5"], ["subscribe", "a@b.org", "--trending=5"]),
        (["subscribe", "--", "--trending"], ["subscribe", "--", "--trending"]),
        (["send", "--trending"], ["send", "--trending"]),  # only subscribe has it
        ([], []),
    ],
)  # fmt: skip
def test_a_bare_trending_option_gets_the_default_before_typer_parses(argv: list[str], expected: list[str]) -> None:
    assert with_trending_values(argv) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["subscribe", "ada@example.org", "--trending", "0"], "trending papers per email must be between 1 and 50"),
        (["subscribe", "ada@example.org", "--trending", "51"], "trending papers per email must be between 1 and 50"),
        (["subscribe", "ada@example.org", "--trending", "-5"], "trending papers per email must be between 1 and 50"),
        (["subscribe", "ada@example.org", "--topic", '"long context'], "column 1: this quote is never closed"),
        (["subscribe", "ada@example.org", "--topic", "agents AND"], "column 8: AND needs a term after it"),
        (["subscribe", "not-an-address", "--topic", "agents"], "is not a valid email address"),
        (["subscribe", "ada@example.org", "--topic", "agents", "--tz", "Mars/Base"], "unknown time zone 'Mars/Base'"),
        (["subscribe", "ada@example.org", "--topic", "agents", "--hour", "25"], "send hour must be between 0 and 23"),
        (["unsubscribe", "nobody@example.org"], "no subscriber with address 'nobody@example.org'"),
        (["preview", "nobody@example.org"], "no subscriber with address"),
        (["fetch", "--file", "missing.rss", "--kind", "rss"], "cannot read missing.rss"),
        (["fetch", "--file", "missing.rss"], "--file needs --kind"),
        (["fetch", "--source", "nope"], "no source named 'nope'"),
        (["send", "--now", "yesterday"], "is not an ISO 8601 time"),
        (["papers", "--since", "last week"], "is not a date like 2026-11-29"),
    ],
)
def test_user_errors_are_one_clear_line(run: Run, args: list[str], message: str) -> None:
    line = _error_line(run(*args, ok=False))
    assert message in line


def test_not_a_feed_is_one_clear_line(run: Run, tmp_path: Path) -> None:
    junk = tmp_path / "junk.xml"
    junk.write_bytes(b"\x00\x01 this is not xml at all <<<")
    line = _error_line(run("fetch", "--file", str(junk), "--kind", "arxiv-rss", ok=False))
    assert "junk.xml: not a readable feed" in line


def test_bad_configuration_is_one_clear_line(run: Run, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["DIGEST_SEND_BATCH_SIZE"] = "lots"
    result = subprocess.run(
        [*DIGEST, "papers"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "Traceback" not in result.stderr
    assert "bad configuration DIGEST_SEND_BATCH_SIZE" in _error_line(result)


def test_send_dry_run_then_send_then_preview(run: Run, tmp_path: Path) -> None:
    run("fetch", "--file", str(SAMPLES / "arxiv-listing.rss"), "--kind", "arxiv-rss")
    run("subscribe", "ada@example.org", "--topic", '"KV cache"')
    # Subscribed now, so the first slot owed is tomorrow 08:00 UTC.
    tomorrow = json.loads(run("papers", "--json").stdout)  # papers were first seen today
    assert tomorrow
    when = _tomorrow_morning()
    dry = run("send", "--now", when, "--dry-run").stdout
    assert "ada@example.org" in dry and "dry-run" in dry and "KV cache" in dry
    assert not (tmp_path / "outbox").exists()
    sent = run("send", "--now", when).stdout
    assert "sent: 1" in sent
    (eml,) = (tmp_path / "outbox").glob("*.eml")
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert "KV cache" in msg["Subject"]
    assert "nothing was due" in run("send", "--now", when).stdout
    html_out = tmp_path / "preview.html"
    out = run("preview", "ada@example.org", "--now", when, "--out", str(html_out)).stdout
    assert "nothing new matches" in out and not html_out.exists()


def _tomorrow_morning() -> str:
    from datetime import UTC, datetime, time, timedelta

    day = datetime.now(UTC).date() + timedelta(days=1)
    return datetime.combine(day, time(9), tzinfo=UTC).isoformat()


def test_demo_runs_clean_twice(run: Run, tmp_path: Path) -> None:
    for _ in range(2):
        out = run("demo").stdout
        assert "sent: 4" in out
        for who in ("ada@example.org", "grace@example.org", "alan@example.org", "hedy@example.org"):
            assert who in out
        assert "trending (top 10)" in out
        files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
        assert len(files) == 8 and sum(f.endswith(".eml") for f in files) == 4


def _serve(args: list[str], cwd: Path, env: dict[str, str], base: str) -> subprocess.Popen[bytes]:
    """`digest serve …` as a real process, once it answers /healthz."""
    import httpx

    server = subprocess.Popen(
        [*DIGEST, "serve", *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    for _ in range(100):
        try:
            httpx.get(f"{base}/healthz", timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.terminate()
    pytest.fail(f"digest serve did not answer: {server.communicate(timeout=20)[0].decode(errors='replace')}")


def _links(eml: Path, base: str) -> dict[str, str]:
    """The first link of each kind (its first path segment: manage, unsubscribe, feedback, …) in an
    outbox email's text part."""
    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    body = msg.get_body(("plain",))
    assert body is not None
    found: dict[str, str] = {}
    for url in re.findall(rf"{re.escape(base)}/\S+", body.get_content()):
        found.setdefault(url.removeprefix(base + "/").split("/")[0], url)
    return found


def test_the_demo_leads_on_to_the_web(tmp_path: Path, fresh_database: FreshDatabase) -> None:
    """After `digest demo`, the one command it prints serves the demo's own data: every kind of link
    in every demo digest opens the right reader's page — whatever database DIGEST_DATABASE_URL
    names, with no DIGEST_SECRET_KEY set (the local key kept beside demo.sqlite3 signs and checks)."""
    import httpx

    from tests.conftest import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_DATABASE_URL=fresh_database("elsewhere"), DIGEST_BASE_URL=base, DIGEST_SOURCES="[]",
        DIGEST_EMBEDDING_MODEL="none", COLUMNS="300",
    )  # fmt: skip
    demo = subprocess.run([*DIGEST, "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stderr
    assert "`digest serve --demo`" in demo.stdout and f"the links open on {base}" in demo.stdout
    server = _serve(["--demo"], tmp_path, env, base)  # no --port: the port the demo's links name
    try:
        emails = sorted((tmp_path / "outbox").glob("*.eml"))
        assert len(emails) == 4
        for eml in emails:
            reader = eml.name.split("-")[0]
            links = _links(eml, base)
            assert {"view", "manage", "unsubscribe", "feedback"} <= set(links), links
            for kind, url in links.items():
                page = httpx.get(url, timeout=10)
                assert page.status_code == 200, (kind, url, page.text[:300])
                if kind in ("manage", "unsubscribe"):
                    assert reader in page.text, (kind, reader)
        one_click = httpx.post(links["unsubscribe"], data={"List-Unsubscribe": "One-Click"}, timeout=10)
        assert one_click.status_code == 200
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode(errors="replace")
    assert "not https" not in output  # a local base URL: no warning
    listed = subprocess.run(
        [*DIGEST, "subscribers", "--json"], cwd=tmp_path, env={**env, "DIGEST_DATABASE_URL": "sqlite:///demo.sqlite3"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    statuses = {s["email"]: s["status"] for s in json.loads(listed.stdout)}
    assert statuses[reader] == "unsubscribed" and list(statuses.values()).count("active") == 3


@pytest.mark.parametrize(
    ("now", "day"),
    [
        ("2026-11-30T05:00:00+00:00", "2026-11-29"),  # before the demo's send time: yesterday's digests
        ("2026-11-30T09:00:00+00:00", "2026-11-30"),
        ("2026-11-30T23:59:00+00:00", "2026-11-30"),
    ],
)
def test_the_demo_day_is_one_whose_links_are_already_valid(now: str, day: str) -> None:
    from datetime import datetime, timedelta

    from digest.demo import SEND_HOUR, demo_day

    start = demo_day(datetime.fromisoformat(now))
    assert start.date().isoformat() == day and start + timedelta(hours=SEND_HOUR) <= datetime.fromisoformat(now)


def test_serve_demo_without_demo_data_is_one_clear_line(run: Run) -> None:
    assert "run `digest demo` first" in _error_line(run("serve", "--demo", ok=False))


@pytest.mark.parametrize(
    ("base_url", "warned"),
    [
        ("http://digest.example.org", True),
        ("HTTP://digest.example.org/", True),
        ("http://10.0.0.5:8000", True),  # a private network is still a network
        ("http://127.0.0.1.example.org", True),
        ("https://digest.example.org", False),
        ("HTTPS://digest.example.org", False),
        ("http://localhost:8000", False),
        ("http://127.0.0.2:8000", False),
        ("http://[::1]:8000", False),
        ("http://digest.localhost", False),
    ],
)
def test_which_base_urls_send_links_in_the_clear(base_url: str, warned: bool) -> None:
    from digest.config import links_in_clear

    assert (links_in_clear(base_url) is not None) is warned


@pytest.mark.parametrize(
    ("base_url", "warned"), [("http://digest.example.org", True), ("https://d.example.org", False)]
)
def test_send_warns_once_when_links_would_travel_in_the_clear(run: Run, base_url: str, warned: bool) -> None:
    result = run("send", "--dry-run", env={"DIGEST_BASE_URL": base_url})
    assert result.stderr.count("is not https") == (1 if warned else 0), result.stderr
    if warned:
        assert f"DIGEST_BASE_URL {base_url} is not https" in result.stderr


def test_serve_warns_once_when_links_would_travel_in_the_clear(tmp_path: Path, fresh_database: FreshDatabase) -> None:
    from tests.conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(
        DIGEST_DATABASE_URL=fresh_database("serve"), DIGEST_SOURCES="[]", DIGEST_SECRET_KEY="k" * 40,
        DIGEST_BASE_URL="http://digest.example.org",
    )  # fmt: skip
    server = _serve(["--port", str(port)], tmp_path, env, f"http://127.0.0.1:{port}")
    server.terminate()
    output = server.communicate(timeout=20)[0].decode(errors="replace")
    assert output.count("DIGEST_BASE_URL http://digest.example.org is not https") == 1, output


@pytest.mark.parametrize(
    ("base_url", "warned"), [("http://digest.example.org", True), ("https://d.example.org", False)]
)
def test_a_worker_warns_at_start_when_links_would_travel_in_the_clear(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, base_url: str, warned: bool
) -> None:
    from workers import celery_app

    monkeypatch.setenv("DIGEST_BASE_URL", base_url)
    monkeypatch.setenv("DIGEST_SECRET_KEY", "w" * 40)
    with caplog.at_level("WARNING"):
        celery_app._refuse_a_weak_key()  # what worker_init and beat_init run
    found = [r.getMessage() for r in caplog.records if "is not https" in r.getMessage()]
    assert len(found) == (1 if warned else 0), found
    assert all(m.startswith(f"DIGEST_BASE_URL {base_url} is not https") for m in found)


def test_serve_answers_health_and_pages(tmp_path: Path, fresh_database: FreshDatabase) -> None:
    import httpx

    from tests.conftest import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_DATABASE_URL=fresh_database("serve"), DIGEST_SOURCES="[]", DIGEST_SECRET_KEY="k" * 40)
    server = subprocess.Popen(
        [*DIGEST, "serve", "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                health = httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            pytest.fail("digest serve did not answer")
        assert health.json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").json() == {"status": "ok", "database": "ok"}
        page = httpx.get(f"{base}/")
        assert page.status_code == 200 and "Subscribe" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        secret = "eyJzIjoxLCJlIjoiYWJjIn0.Z1x2Yw.SeCrEtSiGnAtUrE"
        for path in (f"/manage/{secret}", f"/unsubscribe/{secret}?x=1", f"/api/manage/{secret}"):
            assert httpx.get(base + path).status_code == 400
    finally:
        server.terminate()
        output = server.communicate(timeout=20)[0].decode(errors="replace")
    # The access log shows every request, and never a link token.
    assert "GET /manage/[token]" in output and "GET /api/manage/[token]" in output, output
    assert secret not in output and "SeCrEt" not in output


def test_status_forget_and_unsuppress(run: Run) -> None:
    run("subscribe", "ada@example.org", "--topic", "agents")
    out = run("status").stdout
    assert "digests, last 24 h: sent: 0" in out and "suppressed addresses: 0" in out
    assert "is forgotten" in run("forget", "ADA@example.org").stdout
    assert json.loads(run("subscribers", "--json").stdout) == []
    line = _error_line(run("subscribe", "ada@example.org", "--topic", "agents", ok=False))
    assert "suppression list" in line
    assert "suppressed addresses: 1" in run("status").stdout
    assert "no longer suppressed" in run("unsuppress", "ada@example.org").stdout
    run("subscribe", "ada@example.org", "--topic", "agents")
    assert "is not on the suppression list" in _error_line(run("unsuppress", "ada@example.org", ok=False))
