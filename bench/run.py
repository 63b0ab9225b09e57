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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import celery_run, db, generate, report, smtp
from digest.config import PROJECT_ROOT

RESULTS = Path(__file__).resolve().parent / "results"
FULL = {
    "subscribers": 100_000,
    "papers": 2_000,
    "sample": 1_000,
    "naive": 200,
    "source_messages": 20_000,
    "budget": 300.0,
}
QUICK = {"subscribers": 2_000, "papers": 300, "sample": 60, "naive": 20, "source_messages": 2_000, "budget": 10.0}


class BenchError(RuntimeError):
    """The benchmark could not run (a missing tool or service, a stage that failed)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="the CI preset: 2,000 subscribers, 300 papers, small samples")
    p.add_argument("--subscribers", type=int, help="readers to generate (default 100,000; quick 2,000)")
    p.add_argument("--papers", type=int, help="new papers to generate (default 2,000; quick 300)")
    p.add_argument("--seed", type=int, default=20261130, help="generator seed (same seed, same day)")
    p.add_argument("--database", help="SQLAlchemy URL (default: a fresh SQLite file under bench/results/tmp)")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/14", help="broker for the Celery runs (dedicated db)")
    p.add_argument("--sample", type=int, help="digests in the render/MIME/send sample (default 1,000; quick 60)")
    p.add_argument("--naive-sample", type=int, help="digests in the naive baseline (default 200; quick 20)")
    p.add_argument("--budget", type=float, default=None,
                   help="seconds per end-to-end run before it stops and extrapolates "
                        "(default 300; quick 10; 0: no limit)")  # fmt: skip
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for latest.json and latest.md")
    p.add_argument("--skip-celery", action="store_true", help="leave out the Celery runs (no Redis needed)")
    p.add_argument("--profile", action="store_true", help="also cProfile match, the per-digest path and send_chunk")
    args = p.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.subscribers = args.subscribers or preset["subscribers"]
    args.papers = args.papers or preset["papers"]
    args.sample = args.sample or preset["sample"]
    args.naive_sample = args.naive_sample or preset["naive"]
    args.source_messages = preset["source_messages"]
    if args.budget is None:
        args.budget = preset["budget"]
    return args


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


def run_stage(name: str, cfg: dict[str, Any], work: Path, timeout: float = 3600) -> dict[str, Any]:
    """Run one stage in a fresh Python process and return its JSON result."""
    cfg_path, out_path = work / f"{name}.config.json", work / f"{name}.result.json"
    cfg_path.write_text(json.dumps(cfg))
    out_path.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bench.stages", cfg["stage"], str(cfg_path), str(out_path)],
        cwd=work, env=env, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0 or not out_path.exists():
        raise BenchError(f"stage {name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(out_path.read_text())
    result["process_wall_s"] = round(time.perf_counter() - started, 2)
    return result


def _remove_stale_runs() -> None:
    """Work folders of earlier runs whose process is gone (a crashed run keeps its folder until then)."""
    import psutil

    for folder in (RESULTS / "tmp").glob("run-*"):
        pid = folder.name.removeprefix("run-")
        if pid.isdigit() and not psutil.pid_exists(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.perf_counter()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    _remove_stale_runs()
    work = RESULTS / "tmp" / f"run-{os.getpid()}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log: list[str] = []

    def say(line: str) -> None:
        stamp = f"[{time.perf_counter() - began:7.1f}s]"
        print(f"{stamp} {line}", flush=True)
        log.append(line)

    tools = smtp.ensure_tools(log)
    sink = smtp.Sink(tools["smtp-sink"], work / "sink").start()
    say(f"smtp-sink listening on 127.0.0.1:{sink.port}")
    result: dict[str, Any] = {}
    try:
        result = _run(args, work, sink, tools, say)
    finally:
        sink.stop()
    result["meta"]["total_wall_s"] = round(time.perf_counter() - began, 1)
    result["log"] = log
    (out / "latest.json").write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    table = report.markdown(result)
    (out / "latest.md").write_text(table)
    print()
    print(table)
    print(f"written: {out / 'latest.json'} and {out / 'latest.md'}")
    if args.database is None and not args.profile:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _run(args: argparse.Namespace, work: Path, sink: smtp.Sink, tools: dict[str, str], say: Any) -> dict[str, Any]:
    n, m = args.subscribers, args.papers
    code_before, dirty_before = code_fingerprint(), _git_dirty()
    url = db.prepare(args.database, work)
    engine = db.engine_for(url)
    now = generate.bench_now()
    t0 = time.perf_counter()
    day = generate.generate(engine, n, m, args.seed, now)
    gen_s = time.perf_counter() - t0
    topics = generate.topic_stats(engine)
    say(f"generated {n:,} subscribers and {m:,} papers in {gen_s:.1f}s ({topics['distinct_topics']} distinct topics)")
    base = {"database_url": url, "now": now.isoformat(), "smtp_url": sink.url, "batch_size": 200}
    stages: dict[str, Any] = {}

    quarter = max(1, n // 4)
    stages["match_quarter"] = run_stage("match_quarter", {**base, "stage": "match", "limit": quarter}, work)
    stages["match"] = run_stage("match", {**base, "stage": "match", "limit": n}, work)
    say(f"match: {stages['match']['subscribers_per_s']:,.0f} subscribers/s, {stages['match']['match_s']}s for {n:,}")

    before = sink.received()
    sample_message = work / "sample-digest.eml"
    digest_cfg = {**base, "stage": "digest", "sample": args.sample, "repeats": 3, "sample_message": str(sample_message)}
    stages["digest"] = run_stage("digest", digest_cfg, work)
    _check_sink(sink, before, stages["digest"]["messages_sent"], "render/MIME/send stage")
    d = stages["digest"]
    say(
        f"render {d['render']['per_s']:,.0f}/s, MIME {d['mime']['per_s']:,.0f}/s, "
        f"send {d['send']['per_s']:,.0f} msg/s, "
        f"per digest {d['per_digest']['cpu_ms_each']} ms CPU ({d['digests']} digests, {d['mean_message_bytes']:,} B)"
    )

    ceiling = smtp.ceiling(tools["smtp-source"], sink, sample_message.read_bytes(), args.source_messages)
    say(
        f"smtp-source ceiling: {ceiling['msg_per_s']:,.0f} msg/s (16 sessions, {ceiling['message_bytes']:,} B messages)"
    )

    before = sink.received()
    stages["naive"] = run_stage("naive", {**base, "stage": "naive", "sample": args.naive_sample}, work)
    _check_sink(sink, before, stages["naive"]["digests"], "naive baseline")
    say(f"naive baseline: {stages['naive']['per_s']} digests/s ({stages['naive']['steps_ms_each']} ms each)")

    generate.reset_deliveries(engine)
    before = sink.received()
    e2e_cfg = {**base, "stage": "e2e", "budget": args.budget}
    stages["e2e"] = run_stage("e2e", e2e_cfg, work, timeout=(args.budget or 3000) + 900)
    _check_sink(sink, before, stages["e2e"]["digests_sent"], "end-to-end send_chunk run")
    e = stages["e2e"]
    say(
        f"end to end in one process: {e['digests_per_s']} digests/s, {e['subscribers_processed']:,} subscribers in "
        f"{e['wall_s']}s{' (stopped at the budget)' if e['stopped_at_budget'] else ''}"
    )

    celery: dict[str, Any] = {}
    if not args.skip_celery:
        for workers in (1, 2):
            generate.reset_deliveries(engine)
            before = sink.received()
            celery[str(workers)] = celery_run.run(
                workers, engine=engine, database_url=url, broker_url=args.redis, smtp_url=sink.url,
                now_iso=now.isoformat(), expected=n, folder=work / f"celery-{workers}", budget=args.budget,
                sink_pid=sink.pid,
            )  # fmt: skip
            got = celery[str(workers)]
            _check_sink(sink, before, got["digests_sent"], f"Celery run with {workers} worker(s)", at_least=True)
            say(
                f"Celery, {workers} worker process(es): {got['digests_per_s']} digests/s, "
                f"{got['settled']:,} settled in "
                f"{got['wall_s']}s{' (stopped at the budget)' if got['stopped_at_budget'] else ''}"
            )
    generate.reset_deliveries(engine)
    profiles = _profile(args, base, work, engine, say) if args.profile else {}
    engine.dispose()

    result: dict[str, Any] = {
        "meta": {
            "started": now.isoformat(),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "subscribers": n,
            "papers": m,
            "seed": args.seed,
            "quick": bool(args.quick),
            "budget_s": args.budget,
            "database": db.describe(url),
            "redis": args.redis,
            "git_commit": _git_commit(),
            "code_fingerprint": code_before,
            "code_uncommitted_changes": dirty_before or _git_dirty(),
            "code_changed_during_run": code_fingerprint() != code_before,
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "smtp_tools": tools,
            "profiles": profiles,
        },
        "generate": {"seconds": round(gen_s, 2), "queries_defined": len(day.queries), **topics},
        "smtp_source": ceiling,
        "stages": stages,
        "celery": celery,
    }
    result["targets"] = report.targets(result)
    return result


def _profile(args: argparse.Namespace, base: dict[str, Any], work: Path, engine: Any, say: Any) -> dict[str, str]:
    """Extra runs under cProfile (never the measured ones): match, the per-digest path, send_chunk."""
    folder = args.out.resolve() / "profiles"
    shutil.rmtree(folder, ignore_errors=True)
    cfg = {**base, "profile_dir": str(folder)}
    run_stage("profile_match", {**cfg, "stage": "match", "limit": min(args.subscribers, 20_000)}, work)
    sample = min(args.sample, 300)
    message = str(work / "profile-digest.eml")
    run_stage(
        "profile_digest", {**cfg, "stage": "digest", "sample": sample, "repeats": 1, "sample_message": message}, work
    )
    generate.reset_deliveries(engine)
    budget = min(args.budget or 90.0, 90.0)
    run_stage("profile_e2e", {**cfg, "stage": "e2e", "budget": budget}, work, timeout=budget + 900)
    generate.reset_deliveries(engine)
    say(f"profiles written to {folder}")
    return {p.stem: str(p) for p in sorted(folder.glob("*.txt"))}


def _check_sink(sink: smtp.Sink, before: int, sent: int, what: str, at_least: bool = False) -> None:
    """smtp-sink's own counter must agree with what the code says it handed over."""
    got = sink.wait_received(before + sent) - before
    if got < sent or (got != sent and not at_least):
        raise BenchError(f"{what}: the code reports {sent} messages sent, smtp-sink counted {got}")


if __name__ == "__main__":
    sys.exit(main())
