"""The big-day benchmark runs end to end at its quick size, as a real process, and writes a complete
report. No timing is asserted here: speed lives in the benchmark's report, as ratios and targets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from bench import generate
from bench.records import RunResult, load
from bench.sample import digest_headers, digest_sample, reader_context
from bench.smtp import which
from digest import compose
from digest.config import PROJECT_ROOT, Settings
from digest.match import annotate
from digest.mime import build_message
from digest.render import render_digest
from tests.conftest import IN_CI, port_open, require

STAGE_KEYS = {
    "embed": ["papers", "papers_per_s", "wall_s", "peak_rss_mb"],
    "train": ["readers", "models", "median_ms", "p95_ms", "peak_rss_mb"],
    "match": ["subscribers", "subscribers_per_s", "match_s", "index_build_s", "peak_rss_mb"],
    "match_quarter": ["subscribers", "subscribers_per_s", "match_s", "peak_rss_mb"],
    "digest": ["digests", "mean_message_bytes", "peak_rss_mb"],
    "naive": ["digests", "per_s", "cpu_ms_each", "peak_rss_mb"],
    "e2e": ["subscribers_processed", "digests_sent", "digests_per_s", "wall_s", "cpu_ms_per_digest", "peak_rss_mb"],
}
DIGEST_PARTS = {
    "render": ["per_s", "cpu_ms_each"],
    "mime": ["per_s", "cpu_ms_each"],
    "send": ["per_s", "cpu_ms_each"],
    "per_digest": ["per_s", "cpu_ms_each", "compose_cpu_ms_each"],
}
CELERY_KEYS = ["digests_sent", "digests_per_s", "wall_s", "projected_wall_s", "worker_cpu_s", "peak_rss_mb", "settled"]
# The suite's own bench schema: a test run never replaces the day someone measures in the default one.
TEST_SCHEMA = "paper_digest_bench_tests"
TARGETS = {
    "embed_2000_s",
    "train_reader_ms",
    "match_100k_s",
    "per_digest_cpu_ms",
    "e2e_100k_2_workers_s",
    "e2e_vs_naive",
    "send_fraction_of_smtp_source",
    "peak_rss_mb",
    "memory_sublinear",
    "scaling_1_to_2_workers",
    "e2e_2_workers_vs_smtp_source",
    "e2e_vs_naive_production",
    "scaling_1_to_2_production",
    "per_digest_cpu_ms_production",
    "wire_bytes_mean",
}


def _positive(section: dict[str, object], keys: list[str], where: str) -> None:
    for key in keys:
        value = section.get(key)
        assert isinstance(value, int | float) and value > 0, f"{where}.{key} should be a positive number, got {value!r}"


def _can_get_smtp_tools() -> bool:
    """smtp-sink is there, or the bench can install it (root with apt-get)."""
    return bool(which("smtp-sink") and which("smtp-source")) or (os.geteuid() == 0 and bool(which("apt-get")))


@pytest.mark.integration
@pytest.mark.timeout(1500)
def test_benchmark_runs_end_to_end_at_quick_size_on_postgresql_then_sqlite(tmp_path: Path) -> None:
    require("Redis on 127.0.0.1:6379", port_open("127.0.0.1", 6379))
    require("PostgreSQL on 127.0.0.1:5432", port_open("127.0.0.1", 5432))
    require("smtp-sink (Debian's postfix, or root to install it)", _can_get_smtp_tools())
    out = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--schema", TEST_SCHEMA, "--out", str(out)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=1440,
    )  # fmt: skip
    assert done.returncode == 0, f"the benchmark failed (CI={IN_CI}):\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"

    headline = json.loads((out / "latest.json").read_text())
    second = json.loads((out / "latest-sqlite.json").read_text())
    assert headline["meta"]["database"].startswith("postgresql+psycopg://"), "PostgreSQL is the headline run"
    assert f"search_path%3D{TEST_SCHEMA}" in headline["meta"]["database"], "in the benchmark's own schema"
    assert second["meta"]["database"].startswith("sqlite:///")
    table = (out / "latest.md").read_text()
    _check_report(headline, table)
    _check_report(second, (out / "latest-sqlite.md").read_text())
    two = headline["celery"]["2"]
    assert two["database_cores"] > 0, "PostgreSQL's share of the cores"
    assert two["broker_cores"] >= 0  # Redis's: a few chunk tasks at this size, often under psutil's 10 ms
    assert "PostgreSQL" in table and "Redis" in table
    comparison = table[table.index("#### The same day on the other database") :]
    assert "postgresql+psycopg (this report)" in comparison and "sqlite (latest-sqlite.md)" in comparison
    for label in ("Celery, 2 workers", "1 → 2 workers", "smtp-source → the same sink", "naive stack"):
        row = next(line for line in comparison.splitlines() if line.startswith(f"| {label} |"))
        assert row.count("|") == 4 and "not run" not in row, row


def _refused(out: Path, *args: str) -> str:
    """Run the bench with these arguments; it must exit 2 with one line (no traceback) and write nothing."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", *args, "--out", str(out)],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, lines
    assert not list(out.iterdir()), "nothing written"
    return lines[0]


def test_an_unreachable_postgresql_is_one_clear_line(tmp_path: Path) -> None:
    dead = "postgresql+psycopg://postgres@127.0.0.1:9/test"
    line = _refused(tmp_path, "--database", dead)
    assert line.startswith(f"bench: PostgreSQL at {dead} does not answer ("), line
    assert "--database sqlite" in line


@pytest.mark.parametrize("schema", ["public", "paper_digest_bench; DROP TABLE subscriber", "paper_digest_benchmark"])
def test_a_schema_outside_the_benchs_own_family_is_refused_before_anything_runs(tmp_path: Path, schema: str) -> None:
    """The bench drops and recreates its schema: any other name (a deployment's `public`) is one
    clear line, before any database is touched."""
    line = _refused(tmp_path, "--schema", schema)
    assert line.startswith("bench: the bench schema must be paper_digest_bench"), line
    assert repr(schema) in line


def _check_report(report: dict, table: str) -> None:  # type: ignore[type-arg]
    """Everything one database's run must have measured and reported."""
    assert report["meta"]["quick"] is True
    assert report["meta"]["subscribers"] == 2_000 and report["meta"]["papers"] == 300
    assert report["generate"]["readers"] == 2_000
    assert report["generate"]["distinct_topics"] >= 100, "a few hundred distinct topics, Zipf-distributed"
    assert 300 <= report["generate"]["semantic_readers"] <= 500, "about 20% of the readers have a like: topic"
    assert 150 <= report["generate"]["voters"] <= 250, "about 10% of the readers voted"

    stages = report["stages"]
    for stage, keys in STAGE_KEYS.items():
        assert stage in stages, f"stage {stage} missing from the report"
        _positive(stages[stage], keys, stage)
    for part, keys in DIGEST_PARTS.items():
        _positive(stages["digest"][part], keys, f"digest.{part}")
    assert stages["match"]["subscribers"] == 2_000 and stages["match_quarter"]["subscribers"] == 500
    _positive(report["smtp_source"], ["msg_per_s", "message_bytes", "sessions"], "smtp_source")

    for workers in ("1", "2"):
        assert workers in report["celery"], f"the Celery run with {workers} worker(s) is missing"
        _positive(report["celery"][workers], CELERY_KEYS, f"celery.{workers}")

    targets = {t["id"]: t for t in report["targets"]}
    assert set(targets) == TARGETS
    for t in targets.values():
        assert t["goal"] and t["shown"], t
        assert isinstance(t["passed"], bool), f"target {t['id']} has no pass/fail mark"
        assert t["target"] in table
    assert "✅" in table or "❌" in table
    assert load(RunResult, report).stages.digest.per_digest.cpu_ms_each > 0  # the JSON reads back as typed records


def test_the_sample_measures_the_digests_the_pipeline_sends(engine: Engine, settings: Settings) -> None:
    """The render and MIME steps (and the bytes on the wire the report gives) are timed on exactly the
    email `compose.digest_message` makes: the reader's signed links, the link to the digest's own
    page and every card's vote links, byte for byte."""
    now = generate.bench_now()
    generate.generate(engine, 60, 40, 7, now, learning=False)
    bench_settings = settings.model_copy(update={"from_address": "Paper Digest <digest@example.org>"})
    index, sample = digest_sample(bench_settings, engine, now, 5)
    assert sample, "the generated day gives some reader a digest"
    for sub, row in sample:
        ctx = reader_context(bench_settings, sub, row)
        matches = annotate(index, sub.topics, row.paper_ids, row.trending_count)
        rendered = render_digest(bench_settings.templates_dir, ctx, matches, row.more_count)
        data = build_message(rendered, digest_headers(bench_settings, sub, row, ctx.unsubscribe_url))
        sent = compose.digest_message(bench_settings, sub, row.id or 0, row, index)
        assert data == sent.data
        assert b"/feedback/" in data and b"/view/" in data
