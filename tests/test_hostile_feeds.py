"""Ill-formed and hostile feeds through `digest fetch --file`: one clear line or a report, never a
traceback, and one bad entry never loses the good ones.

The corpus in tests/fixtures/feedparser/ is feedparser's own test suite (its LICENSE is beside it):
ill-formed documents, every encoding and entity case, and the sanitizer's hostile HTML.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.celery_process import child_environment
from digest.cli import app
from tests.conftest import FIXTURES, FreshDatabase

CORPUS = FIXTURES / "feedparser"
ALL_XML = sorted(CORPUS.rglob("*.xml"))
# Every document as a generic feed; the ill-formed, encoding and entity cases also as arXiv feeds.
ARXIV_TOO = [p for p in ALL_XML if p.relative_to(CORPUS).parts[0] in ("illformed", "encoding", "entities")]
GOOD_ITEM = "<item><title>Good paper</title><link>https://arxiv.org/abs/2406.00003</link></item>"


@pytest.fixture
def cli_env(fresh_database: FreshDatabase) -> dict[str, str]:
    return {
        "DIGEST_DATABASE_URL": fresh_database("corpus"),
        "DIGEST_SOURCES": "[]",
        "DIGEST_SECRET_KEY": "hostile-feeds-secret",
        "COLUMNS": "200",
    }


def fetch_file(env: dict[str, str], path: Path, kind: str) -> tuple[int, str]:
    """`digest fetch --file PATH --kind KIND` in this process: exit code and everything it printed."""
    result = CliRunner().invoke(app, ["fetch", "--file", str(path), "--kind", kind], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{path.name} as {kind}: {type(result.exception).__name__}: {result.exception}")
    return result.exit_code, result.output


def test_the_corpus_is_there() -> None:
    assert len(ALL_XML) > 2000 and len(ARXIV_TOO) > 300


@pytest.mark.parametrize("kind", ["rss", "arxiv-rss", "arxiv-atom"])
def test_no_document_of_the_corpus_makes_a_traceback(cli_env: dict[str, str], kind: str) -> None:
    paths = ALL_XML if kind == "rss" else ARXIV_TOO
    outcomes = {"ingested": 0, "refused": 0}
    for path in paths:
        code, output = fetch_file(cli_env, path, kind)
        assert "Traceback" not in output, f"{path}: {output}"
        assert code in (0, 1), f"{path}: exit {code}: {output}"
        if code == 1:
            lines = [line for line in output.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{path}: {output}"
        outcomes["ingested" if code == 0 else "refused"] += 1
    # Most of the corpus has entries; many documents are only a channel (refused as "not a feed"
    # when no entry parses), and arXiv parsers refuse what carries no arXiv ids.
    assert outcomes["ingested"] > (len(paths) // 2 if kind == "rss" else 50), outcomes


def _rss(bad: str) -> str:
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{bad}{GOOD_ITEM}</channel></rss>'


HOSTILE = {
    "char-ref-outside-unicode": (
        "rss",
        _rss("<item><title>x &#1114112; y &#xD800;</title><link>https://arxiv.org/abs/2406.00001</link></item>"),
    ),
    "stray-end-tag-in-image": (
        "rss",
        _rss("<image><url>http://e.org/i.png</url></item></title></image>"),
    ),
    "number-of-5000-digits": (
        "hf-json",
        '[{"paper": {"id": "2406.00001", "title": "Bad", "upvotes": ' + "9" * 5000 + "}},"
        ' {"paper": {"id": "2406.00003", "title": "Good paper", "upvotes": 3}}]',
    ),
    "upvotes-above-2-to-the-63": (
        "hf-json",
        json.dumps(
            [
                {"paper": {"id": "2406.00001", "title": "Bad", "upvotes": 2**64}},
                {"paper": {"id": "2406.00003", "title": "Good paper", "upvotes": 3}},
            ]
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_one_bad_entry_keeps_the_good_ones_as_a_real_process(
    case: str, tmp_path: Path, fresh_database: FreshDatabase
) -> None:
    kind, body = HOSTILE[case]
    feed = tmp_path / "feed"
    feed.write_text(body, encoding="utf-8")
    env = child_environment(
        DIGEST_DATABASE_URL=fresh_database("hostile"), DIGEST_SOURCES="[]", DIGEST_SECRET_KEY="x" * 32
    )
    run = [sys.executable, "-m", "digest"]
    done = subprocess.run(
        [*run, "fetch", "--file", str(feed), "--kind", kind], env=env, cwd=tmp_path,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert "Traceback" not in done.stderr + done.stdout, done.stderr
    assert done.returncode == 0, done.stderr
    papers = subprocess.run(
        [*run, "papers", "--json"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=True
    )
    titles = {p["id"]: p for p in json.loads(papers.stdout)}
    assert titles["2406.00003"]["title"] == "Good paper"
    if "2406.00001" in titles:  # the bad field is dropped or replaced, never stored as it came
        bad = titles["2406.00001"]
        assert bad["upvotes"] is None or bad["upvotes"] < 2**63
        assert "\ufffd" in bad["title"] or bad["title"] == "Bad"
