"""`python -m bench`: generate a big day, run every stage on the real code, write the report."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sqlalchemy.engine import Engine

from bench import celery_run, db, generate, report, smtp
from bench.celery_process import child_environment
from bench.celery_run import CeleryConfig
from bench.records import (
    Ceiling,
    CeleryResult,
    DigestConfig,
    DigestResult,
    E2eConfig,
    E2eResult,
    EmbedConfig,
    EmbedResult,
    GenerateStats,
    MatchConfig,
    MatchResult,
    Meta,
    NaiveConfig,
    NaiveResult,
    RunResult,
    Setup,
    StageConfig,
    StageResult,
    Stages,
    TrainConfig,
    TrainResult,
    dumps,
    load,
)
from digest.config import PROJECT_ROOT

RESULTS = Path(__file__).resolve().parent / "results"
R = TypeVar("R", bound=StageResult)
Say = Callable[[str], None]


class BenchError(RuntimeError):
    """The benchmark could not run (a missing tool or service, a stage that failed)."""


@dataclass(frozen=True)
class Preset:
    subscribers: int
    papers: int
    sample: int
    naive: int
    source_messages: int
    budget: float


FULL = Preset(subscribers=100_000, papers=2_000, sample=1_000, naive=200, source_messages=20_000, budget=300.0)
# The benchmark's PostgreSQL when none is given (DIGEST_BENCH_POSTGRES overrides it): it works only
# in its own schema there (bench/db.py), never on the tables of a deployment.
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
QUICK = Preset(subscribers=2_000, papers=300, sample=60, naive=20, source_messages=2_000, budget=10.0)


@dataclass(frozen=True)
class Options:
    """The command line, with the preset's sizes filled in."""

    subscribers: int
    papers: int
    seed: int
    quick: bool
    databases: tuple[str | None, ...]  # the first is the headline; None: a fresh SQLite file
    redis: str
    sample: int
    naive_sample: int
    source_messages: int
    budget: float
    out: Path
    skip_celery: bool
    without_learning: bool
    profile: bool
    schema: str = db.PG_SCHEMA  # on PostgreSQL: the bench's own schema, dropped and made again


def parse_args(argv: list[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the CI preset: 2,000 subscribers, 300 papers, small samples")
    p.add_argument("--subscribers", type=int, help="readers to generate (default 100,000; quick 2,000)")
    p.add_argument("--papers", type=int, help="new papers to generate (default 2,000; quick 300)")
    p.add_argument("--seed", type=int, default=20261130, help="generator seed (same seed, same day)")
    p.add_argument("--database", action="append", metavar="URL",
                   help="SQLAlchemy URL, or `sqlite` for a fresh SQLite file; repeat for more runs, the first is "
                        "the headline (default: the local PostgreSQL, then SQLite)")  # fmt: skip
    p.add_argument("--schema", default=db.PG_SCHEMA,
                   help=f"PostgreSQL: the bench's own schema, dropped and created again "
                        f"(default {db.PG_SCHEMA}; another must be {db.PG_SCHEMA}_<suffix>)")  # fmt: skip
    p.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="broker for the Celery runs (dedicated db)")
    p.add_argument("--sample", type=int, help="digests in the render/MIME/send sample (default 1,000; quick 60)")
    p.add_argument("--naive-sample", type=int, help="digests in the naive baseline (default 200; quick 20)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds per end-to-end run before it stops and extrapolates "
                        "(default 300; quick 10; 0: no limit)")  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json and latest.md")
    p.add_argument("--skip-celery", action="store_true", help="leave out the Celery runs (no Redis needed)")
    p.add_argument("--without-learning", action="store_true",
                   help="no readers with like: topics or votes (the day of issue 12, before issue 13)")  # fmt: skip
    p.add_argument("--profile", action="store_true", help="also cProfile match, the per-digest path and send_chunk")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    return Options(
        subscribers=args.subscribers or preset.subscribers,
        papers=args.papers or preset.papers,
        seed=args.seed,
        quick=bool(args.quick),
        databases=databases(args.database),
        redis=args.redis,
        sample=args.sample or preset.sample,
        naive_sample=args.naive_sample or preset.naive,
        source_messages=preset.source_messages,
        budget=preset.budget if args.budget is None else args.budget,
        out=args.out,
        skip_celery=args.skip_celery,
        without_learning=args.without_learning,
        profile=args.profile,
        schema=args.schema,
    )


def databases(given: list[str] | None) -> tuple[str | None, ...]:
    """The runs' databases, headline first: as given (`sqlite` meaning a fresh file), or by default
    production's database, the local PostgreSQL, then SQLite as the second, labelled run."""
    if not given:
        return (os.environ.get("DIGEST_BENCH_POSTGRES", LOCAL_POSTGRES), None)
    return tuple(None if url == "sqlite" else url for url in given)


# ---- the code under test ---------------------------------------------------------------------------


def code_fingerprint() -> str:
    """A hash of the code and templates under test (others may edit them while a run is going)."""
    digest = hashlib.sha256()
    for folder, pattern in (("digest", "**/*.py"), ("workers", "*.py"), ("email_templates", "*")):
        for path in sorted((PROJECT_ROOT / folder).glob(pattern)):
            if path.is_file():
                digest.update(str(path.relative_to(PROJECT_ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def _git_dirty() -> bool:
    try:
        out = subprocess.run(
            ["git", "status", "--porcelain", "--", "digest", "workers", "email_templates"],
            cwd=PROJECT_ROOT, capture_output=True, text=True,
        )  # fmt: skip
        return bool(out.stdout.strip())
    except OSError:
        return False


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
        return out.stdout.strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class CodeState:
    """The code under test when the run began."""

    fingerprint: str
    dirty: bool

    @classmethod
    def read(cls) -> CodeState:
        return cls(code_fingerprint(), _git_dirty())


# ---- one stage, in a process of its own ---------------------------------------------------------------


def run_stage(name: str, cfg: StageConfig, kind: type[R], work: Path, timeout: float = 3600) -> R:
    """Run one stage in a fresh Python process and return its result."""
    cfg_path, out_path = work / f"{name}.config.json", work / f"{name}.result.json"
    cfg_path.write_text(dumps(cfg))
    out_path.unlink(missing_ok=True)
    env = child_environment()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.stages", cfg.stage, str(cfg_path), str(out_path)],
        cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0 or not out_path.exists():
        raise BenchError(f"stage {name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result = load(kind, json.loads(out_path.read_text()))
    return replace(result, process_wall_s=round(time.perf_counter() - started, 2))


# ---- the run ----------------------------------------------------------------------------------------


@dataclass
class Bench:
    """One run: its options, work folder, smtp-sink and database, and how it reports progress."""

    opts: Options
    work: Path
    sink: smtp.Sink
    tools: dict[str, str]
    say: Say
    setup: Setup
    engine: Engine

    def generate(self) -> GenerateStats:
        """Fill the database with the day."""
        n, m = self.opts.subscribers, self.opts.papers
        t0 = time.perf_counter()
        day = generate.generate(self.engine, n, m, self.opts.seed, self.setup.now, not self.opts.without_learning)
        seconds = time.perf_counter() - t0
        topics = generate.topic_stats(self.engine)
        self.say(
            f"generated {n:,} subscribers and {m:,} papers in {seconds:.1f}s ({topics.distinct_topics} distinct topics)"
        )
        self.say(
            f"{topics.semantic_readers:,} readers with a like: topic, {day.voters:,} with votes, "
            f"{day.history:,} earlier papers"
        )
        return GenerateStats.of(
            topics, seconds=round(seconds, 2), queries_defined=len(day.queries), voters=day.voters,
            earlier_papers=day.history,
        )  # fmt: skip

    def stages(self) -> tuple[Stages, Ceiling]:
        """Every stage, in order (the smtp-source ceiling sends the digest stage's typical message)."""
        embed, train = self.learn()
        quarter, full = self.match()
        digest = self.digest()
        ceiling = self.ceiling()
        naive = self.naive()
        e2e = self.e2e()
        stages = Stages(
            embed=embed, train=train, match_quarter=quarter, match=full, digest=digest, naive=naive, e2e=e2e
        )
        return stages, ceiling

    def learn(self) -> tuple[EmbedResult, TrainResult]:
        """Embed every paper (the day's and the earlier ones), then train every voter's model."""
        embed = run_stage("embed", EmbedConfig(setup=self.setup), EmbedResult, self.work)
        self.say(
            f"embed: {embed.papers:,} papers in {embed.wall_s}s ({embed.papers_per_s} papers/s, model loaded in "
            f"{embed.model_load_s}s)"
        )
        train = run_stage("train", TrainConfig(setup=self.setup), TrainResult, self.work)
        self.say(
            f"train: {train.models:,} models for {train.readers:,} voters, median {train.median_ms} ms, "
            f"p95 {train.p95_ms} ms"
        )
        return embed, train

    def match(self) -> tuple[MatchResult, MatchResult]:
        """The match stage at N/4 and at N, for the memory growth."""
        n = self.opts.subscribers
        quarter = run_stage(
            "match_quarter", MatchConfig(setup=self.setup, limit=max(1, n // 4)), MatchResult, self.work
        )
        full = run_stage("match", MatchConfig(setup=self.setup, limit=n), MatchResult, self.work)
        self.say(f"match: {full.subscribers_per_s:,.0f} subscribers/s, {full.match_s}s for {n:,}")
        return quarter, full

    def digest(self) -> DigestResult:
        before = self.sink.received()
        cfg = DigestConfig(setup=self.setup, sample=self.opts.sample, sample_message=self.sample_message)
        d = run_stage("digest", cfg, DigestResult, self.work)
        self.check_sink(before, d.messages_sent, "render/MIME/send stage")
        self.say(
            f"render {d.render.per_s:,.0f}/s, MIME {d.mime.per_s:,.0f}/s, send {d.send.per_s:,.0f} msg/s, "
            f"per digest {d.per_digest.cpu_ms_each} ms CPU ({d.digests} digests, {d.mean_message_bytes:,} B)"
        )
        return d

    @property
    def sample_message(self) -> Path:
        return self.work / "sample-digest.eml"

    def ceiling(self) -> Ceiling:
        message = self.sample_message.read_bytes()
        found = smtp.ceiling(self.tools["smtp-source"], self.sink, message, self.opts.source_messages)
        self.say(f"smtp-source ceiling: {found.msg_per_s:,.0f} msg/s (16 sessions, {found.message_bytes:,} B messages)")
        return found

    def naive(self) -> NaiveResult:
        before = self.sink.received()
        naive = run_stage("naive", NaiveConfig(setup=self.setup, sample=self.opts.naive_sample), NaiveResult, self.work)
        self.check_sink(before, naive.digests, "naive baseline")
        self.say(f"naive baseline: {naive.per_s} digests/s ({naive.steps_ms_each} ms each)")
        return naive

    def e2e(self) -> E2eResult:
        generate.reset_deliveries(self.engine)
        before = self.sink.received()
        cfg = E2eConfig(setup=self.setup, budget=self.opts.budget)
        e = run_stage("e2e", cfg, E2eResult, self.work, timeout=(self.opts.budget or 3000) + 900)
        self.check_sink(before, e.digests_sent, "end-to-end send_chunk run")
        self.say(
            f"end to end in one process: {e.digests_per_s} digests/s, {e.subscribers_processed:,} subscribers in "
            f"{e.wall_s}s{' (stopped at the budget)' if e.stopped_at_budget else ''}"
        )
        return e

    def celery(self) -> dict[str, CeleryResult]:
        """The day through 1, then 2 Celery worker processes, each from an empty delivery table."""
        cfg = CeleryConfig(
            settings=self.setup.settings(broker_url=self.opts.redis), now=self.setup.now,
            expected=self.opts.subscribers, folder=self.work, budget=self.opts.budget, sink_pid=self.sink.pid,
        )  # fmt: skip
        runs: dict[str, CeleryResult] = {}
        for workers in (1, 2):
            generate.reset_deliveries(self.engine)
            before = self.sink.received()
            got = runs[str(workers)] = celery_run.run(workers, cfg, self.engine)
            self.check_sink(before, got.digests_sent, f"Celery run with {workers} worker(s)", at_least=True)
            self.say(
                f"Celery, {workers} worker process(es): {got.digests_per_s} digests/s, {got.settled:,} settled in "
                f"{got.wall_s}s{' (stopped at the budget)' if got.stopped_at_budget else ''}"
            )
        return runs

    def profile(self) -> dict[str, str]:
        """Extra runs under cProfile (never the measured ones): match, the per-digest path, send_chunk."""
        folder = self.opts.out.resolve() / "profiles"
        shutil.rmtree(folder, ignore_errors=True)
        setup = replace(self.setup, profile_dir=folder)
        match = MatchConfig(setup=setup, limit=min(self.opts.subscribers, 20_000))
        run_stage("profile_match", match, MatchResult, self.work)
        message = self.work / "profile-digest.eml"
        digest = DigestConfig(setup=setup, sample=min(self.opts.sample, 300), repeats=1, sample_message=message)
        run_stage("profile_digest", digest, DigestResult, self.work)
        generate.reset_deliveries(self.engine)
        budget = min(self.opts.budget or 90.0, 90.0)
        run_stage("profile_e2e", E2eConfig(setup=setup, budget=budget), E2eResult, self.work, timeout=budget + 900)
        generate.reset_deliveries(self.engine)
        self.say(f"profiles written to {folder}")
        return {p.stem: str(p) for p in sorted(folder.glob("*.txt"))}

    def check_sink(self, before: int, sent: int, what: str, at_least: bool = False) -> None:
        """smtp-sink's own counter must agree with what the code says it handed over."""
        got = self.sink.wait_received(before + sent) - before
        if got < sent or (got != sent and not at_least):
            raise BenchError(f"{what}: the code reports {sent} messages sent, smtp-sink counted {got}")

    def meta(self, code: CodeState, profiles: dict[str, str]) -> Meta:
        """What was run, where and on which code."""
        return Meta(
            started=self.setup.now.isoformat(),
            finished=datetime.now(UTC).isoformat(timespec="seconds"),
            subscribers=self.opts.subscribers,
            papers=self.opts.papers,
            seed=self.opts.seed,
            quick=self.opts.quick,
            budget_s=self.opts.budget,
            database=db.describe(self.setup.database_url),
            redis=self.opts.redis,
            git_commit=_git_commit(),
            code_fingerprint=code.fingerprint,
            code_uncommitted_changes=code.dirty or _git_dirty(),
            code_changed_during_run=code_fingerprint() != code.fingerprint,
            python=platform.python_version(),
            cpus=os.cpu_count() or 1,
            load_average=[round(x, 2) for x in os.getloadavg()],
            smtp_tools=self.tools,
            profiles=profiles,
            learning=not self.opts.without_learning,
        )


def _run(
    opts: Options, database: str | None, work: Path, sink: smtp.Sink, tools: dict[str, str], say: Say
) -> RunResult:
    """Generate the day, measure every stage and Celery run on it, and evaluate the targets."""
    code = CodeState.read()
    url = db.prepare(database, work, opts.schema)
    setup = Setup(database_url=url, now=generate.bench_now(), smtp_url=sink.url)
    bench = Bench(opts, work, sink, tools, say, setup, db.engine_for(url))
    generated = bench.generate()
    stages, ceiling = bench.stages()
    celery = {} if opts.skip_celery else bench.celery()
    generate.reset_deliveries(bench.engine)
    profiles = bench.profile() if opts.profile else {}
    bench.engine.dispose()
    meta = bench.meta(code, profiles)
    result = RunResult(meta=meta, generate=generated, smtp_source=ceiling, stages=stages, celery=celery)
    return replace(result, targets=report.targets(result))


# ---- the command --------------------------------------------------------------------------------------


def _remove_stale_runs() -> None:
    """Work folders of earlier runs whose process is gone (a crashed run keeps its folder until then)."""
    import psutil

    for folder in (RESULTS / "tmp").glob("run-*"):
        pid = folder.name.removeprefix("run-")
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _work_folder() -> Path:
    """This run's own, empty work folder (old runs' folders are removed once their process is gone)."""
    _remove_stale_runs()
    work = RESULTS / "tmp" / f"run-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return work


def _write(result: RunResult, out: Path, name: str, extra: list[str] | None = None) -> None:
    (out / f"{name}.json").write_text(dumps(result) + "\n")
    table = report.markdown(result) + ("\n".join(extra) + "\n" if extra else "")
    (out / f"{name}.md").write_text(table)
    print()
    print(table)
    print(f"written: {out / name}.json and {out / name}.md")


def _one_run(opts: Options, database: str | None, work: Path, tools: dict[str, str], say: Say) -> RunResult:
    """One database's run, with its own smtp-sink (whose counter each stage is checked against)."""
    began = time.perf_counter()
    sink = smtp.Sink(tools["smtp-sink"], work / "sink").start()
    say(f"{db.kind(database)}: smtp-sink listening on 127.0.0.1:{sink.port}")
    try:
        result = _run(opts, database, work, sink, tools, say)
    finally:
        sink.stop()
    return replace(result, meta=replace(result.meta, total_wall_s=round(time.perf_counter() - began, 1)))


def main(argv: list[str] | None = None) -> int:
    opts = parse_args(argv)
    began = time.perf_counter()
    out = opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    log: list[str] = []

    def say(line: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f}s] {line}", flush=True)
        log.append(line)

    try:
        db.check_schema(opts.schema)
        for database in opts.databases:
            db.check_reachable(database)
        work = _work_folder()
        tools = smtp.ensure_tools(log)
        results = []
        for k, database in enumerate(opts.databases):
            log.clear()
            result = _one_run(opts, database, work / f"{k}-{db.kind(database)}", tools, say)
            results.append(replace(result, log=list(log)))
    except db.BenchDatabaseError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    headline, *others = results
    names = [f"latest-{db.kind(d)}" for d in opts.databases[1:]]
    for other, name in zip(others, names, strict=True):
        _write(other, out, name)
    _write(headline, out, "latest", report.second_runs(headline, list(zip(names, others, strict=True))))
    if not opts.profile:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
