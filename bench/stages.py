"""The measured stages, each run in a process of its own (`python -m bench.stages STAGE CONFIG OUT`),
so that the peak RSS it reports is that stage's alone. Every stage calls the project's real code.

- match:   build the PaperIndex once, then `digest.match.select` for every subscriber, streamed in batches
- digest:  on a sample of real selections: render (`render_digest`), MIME (`build_message`), send
           (`SmtpTransport` to smtp-sink), and the whole per-digest path (`compose_message` + send)
- naive:   the same sample the naive way: premailer per email, stdlib EmailMessage, one smtplib connection
- e2e:     the real `plan_due` + `send_chunk` loop (what `digest send` runs) over every subscriber
"""

from __future__ import annotations

import cProfile
import email.policy
import io
import json
import pstats
import resource
import smtplib
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import col, select

from digest import compose, pipeline
from digest.compose import render_for
from digest.config import Settings
from digest.db import make_engine, open_session
from digest.index import load_index
from digest.match import PaperIndex, annotate
from digest.match import select as select_papers
from digest.mime import Headers, build_message
from digest.models import Delivery, Subscriber
from digest.pipeline import send_chunk
from digest.plan import Due, Window, plan_due, schedule_of, window_end
from digest.render import (
    DigestContext,
    environment,
    paper_view,
    render_digest,
    subject_line,
    subject_topics,
    topic_label,
)
from digest.schedule import latest_slot, previous_slot, zone
from digest.send import Outcome, Outgoing, Result, SmtpTransport

STREAM_BATCH = 2_000
NAIVE_TEMPLATES = Path(__file__).resolve().parent / "naive_templates"


def settings_for(cfg: dict[str, Any]) -> Settings:
    """The Settings every stage and worker uses (no .env file is read)."""
    return Settings(
        _env_file=None,
        database_url=cfg["database_url"],
        smtp_url=cfg.get("smtp_url"),
        broker_url=None,
        sources=[],
        from_address="Paper Digest <digest@example.org>",
        base_url="https://digest.example.org",
        secret_key="bench-secret-key",
        smtp_connections=cfg.get("smtp_connections", 4),
        send_batch_size=cfg.get("batch_size", 200),
    )


def peak_rss_mb() -> float:
    """This process's peak resident set size so far (getrusage: KiB on Linux)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def rss_mb() -> float:
    return round(float(psutil.Process().memory_info().rss) / 2**20, 1)


@contextmanager
def profiled(cfg: dict[str, Any], name: str) -> Iterator[None]:
    """cProfile the block when the config asks for it; writes NAME.prof and NAME.txt."""
    folder = cfg.get("profile_dir")
    if not folder:
        yield
        return
    prof = cProfile.Profile()
    prof.enable()
    try:
        yield
    finally:
        prof.disable()
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        prof.dump_stats(str(out / f"{name}.prof"))
        text = io.StringIO()
        for key in ("cumulative", "tottime"):
            text.write(f"==== {name}: top 45 by {key} ====\n")
            pstats.Stats(prof, stream=text).strip_dirs().sort_stats(key).print_stats(45)
        (out / f"{name}.txt").write_text(text.getvalue())


class Clock:
    """Wall and process-CPU time of a block (CPU covers every thread of this process)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    @contextmanager
    def run(self) -> Iterator[None]:
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.wall += time.perf_counter() - w
            self.cpu += time.process_time() - c


def _now(cfg: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(cfg["now"])


def _stream(engine: Any, limit: int) -> Iterator[list[Any]]:
    """Subscribers (id, topics, min_upvotes, max_papers) in id order, STREAM_BATCH at a time."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    last, left = 0, limit
    with engine.connect() as conn:
        while left > 0:
            query = (
                sa_select(table.c.id, table.c.topics, table.c.min_upvotes, table.c.max_papers)
                .where(table.c.id > last, table.c.status == "active")
                .order_by(table.c.id)
                .limit(min(STREAM_BATCH, left))
            )
            rows = conn.execute(query).all()
            if not rows:
                return
            yield rows
            last = rows[-1][0]
            left -= len(rows)


def stage_match(cfg: dict[str, Any]) -> dict[str, Any]:
    """Build the index once, then select() for the first `limit` subscribers, streamed in batches."""
    settings = settings_for(cfg)
    engine = make_engine(settings.database_url)
    now = _now(cfg)
    start = previous_slot_start(now)
    end = window_end(settings, now)
    base_rss = rss_mb()
    index_clock, load_clock, match_clock = Clock(), Clock(), Clock()
    with index_clock.run(), open_session(engine) as session:
        index = load_index(session, start - timedelta(days=3650), end)
    index_rss = rss_mb()
    readers = nonempty = shown = matched = 0
    batches = _stream(engine, cfg["limit"])
    with profiled(cfg, "match"):
        while True:
            with load_clock.run():
                rows = next(batches, None)
            if rows is None:
                break
            with match_clock.run():
                for _id, topics, min_upvotes, cap in rows:
                    chosen = select_papers(
                        index, topics, candidates=index.window(start, end), min_upvotes=min_upvotes, cap=cap
                    )
                    readers += 1
                    if chosen.matches:
                        nonempty += 1
                        shown += len(chosen.matches)
                        matched += len(chosen.matches) + chosen.more
    engine.dispose()
    return {
        "subscribers": readers,
        "papers": len(index.papers),
        "distinct_topics_compiled": len(getattr(index, "_topics", {})),
        "index_build_s": round(index_clock.wall, 3),
        "stream_load_s": round(load_clock.wall, 3),
        "match_s": round(match_clock.wall, 3),
        "match_cpu_s": round(match_clock.cpu, 3),
        "subscribers_per_s": round(readers / match_clock.wall, 1) if match_clock.wall else 0.0,
        "with_loading_subscribers_per_s": round(readers / (match_clock.wall + load_clock.wall), 1),
        "nonempty_share": round(nonempty / max(1, readers), 3),
        "mean_papers_shown": round(shown / max(1, nonempty), 1),
        "mean_papers_matched": round(matched / max(1, nonempty), 1),
        "rss_start_mb": base_rss,
        "rss_after_index_mb": index_rss,
        "rss_end_mb": rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
    }


def previous_slot_start(now: datetime) -> datetime:
    """Where a daily 00:00 UTC reader's window starts when their previous digest went out on time."""
    from digest.models import Frequency
    from digest.schedule import Schedule

    return previous_slot(Schedule(Frequency.DAILY, 0, "UTC"), now).due


Sample = list[tuple[Subscriber, Delivery]]


def _sample(settings: Settings, engine: Any, now: datetime, count: int) -> tuple[PaperIndex, Sample]:
    """The first `count` subscribers whose digest is not empty, each with the delivery row the
    pipeline would compose for them (in memory, keyed 1..count)."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        low, high = conn.execute(sa_select(func.min(table.c.id), func.max(table.c.id))).one()
    # The first readers in id order, as a fresh worker meets them chunk after chunk (the readers'
    # topics are drawn at random, so a contiguous block is a random sample).
    wanted = list(range(low, min(high, low + 2 * count + 100) + 1))
    end = window_end(settings, now)
    with open_session(engine) as session:
        index = load_index(session, now - timedelta(days=3650), end)
        picked: list[tuple[Subscriber, Delivery]] = []
        for i in range(0, len(wanted), 500):
            subs = session.exec(
                select(Subscriber).where(col(Subscriber.id).in_(wanted[i : i + 500])).order_by(col(Subscriber.id))
            )
            for sub in subs:
                assert sub.id is not None
                slot = latest_slot(schedule_of(sub), now)
                start = previous_slot(schedule_of(sub), now).due  # where yesterday's digest ended
                due = Due(sub, slot, Window(start, end))
                planned = pipeline.select_for(settings, due, index, now)  # what the pipeline records
                if not planned.paper_ids:
                    continue
                row = Delivery(id=len(picked) + 1, **planned.values())  # kept in memory, never inserted
                picked.append((sub, row))
                if len(picked) >= count:
                    return index, picked
    return index, picked


def _renders(settings: Settings, sub: Subscriber, row: Delivery, index: PaperIndex) -> bool:
    try:
        render_for(settings, sub, row, index)
    except Exception:
        return False
    return True


def _context(settings: Settings, sub: Subscriber, row: Delivery) -> DigestContext:
    urls = compose.links(settings, sub, row.created_at)
    return compose.context(settings, sub, row.created_at.astimezone(zone(sub.timezone)), urls)


def _headers(settings: Settings, sub: Subscriber, row: Delivery, unsubscribe_url: str) -> Headers:
    return compose.headers(settings, sub, row.created_at, row.message_id, unsubscribe_url, listed=True)


def _deliver(transport: SmtpTransport, messages: list[Outgoing]) -> Counter[str]:
    outcomes: Counter[str] = Counter()

    def report(result: Result) -> None:
        outcomes[result.outcome.value] += 1

    transport.deliver(messages, report)
    return outcomes


def _median_rate(samples: list[tuple[float, float]], count: int) -> dict[str, Any]:
    walls = [w for w, _c in samples]
    cpus = [c for _w, c in samples]
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {
        "per_s": round(count / wall, 1),
        "wall_ms_each": round(1000 * wall / count, 3),
        "cpu_ms_each": round(1000 * cpu / count, 3),
        "runs_per_s": [round(count / w, 1) for w in walls],
    }


def stage_digest(cfg: dict[str, Any]) -> dict[str, Any]:
    """Render, MIME, send and the whole per-digest path, each timed alone on the same sample."""
    settings = settings_for(cfg)
    assert settings.smtp is not None
    engine = make_engine(settings.database_url)
    now = _now(cfg)
    reps = cfg.get("repeats", 3)
    errors: list[str] = []
    index, candidates = _sample(settings, engine, now, cfg["sample"])
    environment(settings.templates_dir)  # compile the templates (once per process, as in a worker)
    sender = parseaddr(settings.from_address)[1]
    transport = SmtpTransport(settings.smtp, timeout=settings.smtp_timeout, connections=settings.smtp_connections)

    # First: the whole path from matched papers to bytes on the socket, as _send_claimed runs it, with
    # every cache of this process cold (the figure the target is judged on); a digest that cannot be
    # composed is counted and left out of everything that follows (the pipeline marks it `failed`).
    cold, cold_compose = Clock(), Clock()
    sample, outgoing = [], []
    with profiled(cfg, "per_digest"), cold.run():
        with cold_compose.run():
            for sub, row in candidates:
                try:
                    outgoing.append(compose.digest_message(settings, sub, row.id or 0, row, index))
                except Exception as exc:
                    errors.append(f"subscriber {sub.id} {sub.topics}: {type(exc).__name__}: {exc}")
                    continue
                sample.append((sub, row))
        path_outcomes = _deliver(transport, outgoing)
    n = len(sample)
    if n == 0:
        raise RuntimeError("no subscriber in the sample has a digest that renders")
    contexts = [_context(settings, sub, row) for sub, row in sample]
    matches = [annotate(index, sub.topics, row.paper_ids) for sub, row in sample]

    render_runs, rendered = [], []
    for _ in range(reps):
        clock = Clock()
        with clock.run():
            rendered = [
                render_digest(settings.templates_dir, ctx, m, row.more_count)
                for ctx, m, (_sub, row) in zip(contexts, matches, sample, strict=True)
            ]
        render_runs.append((clock.wall, clock.cpu))

    headers = [
        _headers(settings, sub, row, ctx.unsubscribe_url) for ctx, (sub, row) in zip(contexts, sample, strict=True)
    ]
    mime_runs, data = [], []
    for _ in range(reps):
        clock = Clock()
        with clock.run():
            data = [build_message(r, h) for r, h in zip(rendered, headers, strict=True)]
        mime_runs.append((clock.wall, clock.cpu))

    send_runs, send_outcomes = [], Counter[str]()
    for _ in range(reps):
        messages = [
            Outgoing(key=row.id or 0, sender=sender, recipient=sub.email, data=d, name=str(row.id))
            for d, (sub, row) in zip(data, sample, strict=True)
        ]
        clock = Clock()
        with clock.run():
            send_outcomes += _deliver(transport, messages)
        send_runs.append((clock.wall, clock.cpu))

    # The same path again with this process's caches warm (cards, words, topics already seen).
    path_runs, compose_cpu = [], []
    for _ in range(max(1, reps - 1)):
        compose_clock, total = Clock(), Clock()
        with total.run():
            with compose_clock.run():
                outgoing = [compose.digest_message(settings, sub, row.id or 0, row, index) for sub, row in sample]
            path_outcomes += _deliver(transport, outgoing)
        path_runs.append((total.wall, total.cpu))
        compose_cpu.append(compose_clock.cpu)

    sizes = [len(d) for d in data]
    mean_size = statistics.mean(sizes)
    typical = min(data, key=lambda d: abs(len(d) - mean_size))  # the digest closest to the mean size
    Path(cfg["sample_message"]).write_bytes(typical)
    html_sizes = [len(r.html.encode()) for r in rendered]
    engine.dispose()
    path = _median_rate(path_runs, n)
    return {
        "digests": n,
        "repeats": reps,
        "mean_papers_per_digest": round(sum(len(r.paper_ids) for _s, r in sample) / n, 1),
        "mean_html_bytes": round(statistics.mean(html_sizes)),
        "mean_message_bytes": round(statistics.mean(sizes)),
        "typical_message_bytes": len(typical),
        "render": _median_rate(render_runs, n),
        "mime": _median_rate(mime_runs, n),
        "send": {
            **_median_rate(send_runs, n),
            "connections": settings.smtp_connections,
            "outcomes": dict(send_outcomes),
        },
        "per_digest": {
            "per_s": round(n / cold.wall, 1),
            "wall_ms_each": round(1000 * cold.wall / n, 3),
            "cpu_ms_each": round(1000 * cold.cpu / n, 3),
            "compose_cpu_ms_each": round(1000 * cold_compose.cpu / n, 3),
            "send_cpu_ms_each": round(1000 * (cold.cpu - cold_compose.cpu) / n, 3),
            "caches": "cold at the start: a fresh process's first digests, in reader order",
            "outcomes": dict(path_outcomes),
        },
        "per_digest_warm": {
            **path,
            "compose_cpu_ms_each": round(1000 * statistics.median(compose_cpu) / n, 3),
            "send_cpu_ms_each": round(path["cpu_ms_each"] - 1000 * statistics.median(compose_cpu) / n, 3),
            "caches": "warm: the same digests again",
        },
        "messages_sent": sum(send_outcomes.values()) + sum(path_outcomes.values()),
        "render_note": "render/MIME/send: median of the repeats, after the cold pass (caches warm)",
        "render_errors": len(errors),
        "render_error_examples": errors[:5],
        "peak_rss_mb": peak_rss_mb(),
    }


def stage_naive(cfg: dict[str, Any]) -> dict[str, Any]:
    """The naive baseline on a sample: premailer.transform on every rendered email, a stdlib
    EmailMessage (quoted-printable text + HTML), one smtplib connection, no work reused."""
    import premailer
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    settings = settings_for(cfg)
    assert settings.smtp is not None
    engine = make_engine(settings.database_url)
    now = _now(cfg)
    index, sample = _sample(settings, engine, now, cfg["sample"])
    sample = [(sub, row) for sub, row in sample if _renders(settings, sub, row, index)]
    env = Environment(  # the digest template as it was before any speed work, frozen in bench/naive_templates
        loader=FileSystemLoader(str(NAIVE_TEMPLATES)),
        autoescape=select_autoescape(enabled_extensions=("html", "xml"), disabled_extensions=("txt",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    steps = {"render": Clock(), "premailer": Clock(), "mime": Clock(), "smtp": Clock()}
    total = Clock()
    sender = parseaddr(settings.from_address)[1]
    sent = 0
    with total.run():
        smtp = smtplib.SMTP(settings.smtp.host, settings.smtp.port, timeout=30)
        try:
            for sub, row in sample:
                with steps["render"].run():
                    ctx = _context(settings, sub, row)
                    found = annotate(index, sub.topics, row.paper_ids)
                    subject = subject_line(len(found) + row.more_count, subject_topics(ctx.topics, found), ctx.date)
                    values = {
                        "subject": subject,
                        "papers": [paper_view(m) for m in found],
                        "more": row.more_count,
                        "ctx": ctx,
                        "topics": [topic_label(t) for t in ctx.topics],
                        "date_label": f"{ctx.date:%A} {ctx.date.day} {ctx.date:%B %Y}",
                    }
                    html = env.get_template("digest.html").render(values)
                    text = env.get_template("digest.txt").render(values)
                with steps["premailer"].run():
                    html = premailer.Premailer(
                        html,
                        allow_network=False,
                        allow_loading_external_files=False,
                        disable_validation=True,
                        strip_important=False,
                        cssutils_logging_level="CRITICAL",
                    ).transform()
                with steps["mime"].run():
                    msg = EmailMessage(policy=email.policy.SMTP)
                    msg["From"] = settings.from_address
                    msg["To"] = sub.email
                    msg["Subject"] = subject
                    msg["Date"] = format_datetime(row.created_at)
                    msg["Message-ID"] = row.message_id
                    msg["List-Unsubscribe"] = f"<{ctx.unsubscribe_url}>"
                    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
                    msg.set_content(text, cte="quoted-printable")
                    msg.add_alternative(html, subtype="html", cte="quoted-printable")
                    payload = msg.as_bytes()
                with steps["smtp"].run():
                    smtp.sendmail(sender, [sub.email], payload)
                    sent += 1
            smtp.quit()
        finally:
            smtp.close()
    engine.dispose()
    return {
        "digests": sent,
        "per_s": round(sent / total.wall, 2),
        "wall_ms_each": round(1000 * total.wall / sent, 2),
        "cpu_ms_each": round(1000 * total.cpu / sent, 2),
        "steps_ms_each": {k: round(1000 * c.wall / sent, 2) for k, c in steps.items()},
        "steps_cpu_ms_each": {k: round(1000 * c.cpu / sent, 2) for k, c in steps.items()},
        "peak_rss_mb": peak_rss_mb(),
    }


def stage_e2e(cfg: dict[str, Any]) -> dict[str, Any]:
    """What `digest send` runs: plan_due pages through the readers, send_chunk composes, claims,
    renders and sends each chunk to smtp-sink; stops early (and says so) past the time budget."""
    from digest.clock import utcnow
    from digest.send import make_transport

    settings = settings_for(cfg)
    engine = make_engine(settings.database_url)
    now = _now(cfg)
    budget = cfg.get("budget") or 0
    transport = make_transport(settings)
    counts: Counter[str] = Counter()
    processed = chunks = 0
    clock = Clock()
    chunk_walls: list[float] = []
    stopped_early = False
    t0 = time.perf_counter()
    with profiled(cfg, "send_chunk"), clock.run(), open_session(engine) as session:
        for ids in plan_due(session, now, settings.send_batch_size):
            began = time.perf_counter()
            report = send_chunk(session, settings, transport, ids, now, clock=utcnow)
            chunk_walls.append(time.perf_counter() - began)
            counts.update(report.counts)
            processed += len(ids)
            chunks += 1
            if budget and time.perf_counter() - t0 > budget:
                stopped_early = True
                break
    engine.dispose()
    sent = counts.get(Outcome.SENT.value, 0)
    return {
        "subscribers_processed": processed,
        "chunks": chunks,
        "batch_size": settings.send_batch_size,
        "counts": dict(counts),
        "digests_sent": sent,
        "wall_s": round(clock.wall, 2),
        "cpu_s": round(clock.cpu, 2),
        "digests_per_s": round(sent / clock.wall, 1),
        "subscribers_per_s": round(processed / clock.wall, 1),
        "cpu_ms_per_digest": round(1000 * clock.cpu / max(1, sent), 3),
        "median_chunk_s": round(statistics.median(chunk_walls), 3) if chunk_walls else 0.0,
        "chunk_s": [round(w, 2) for w in chunk_walls[:100]],
        "stopped_at_budget": stopped_early,
        "peak_rss_mb": peak_rss_mb(),
    }


STAGES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "match": stage_match,
    "digest": stage_digest,
    "naive": stage_naive,
    "e2e": stage_e2e,
}


def main(argv: list[str]) -> int:
    stage, config, out = argv
    cfg = json.loads(Path(config).read_text())
    result = STAGES[stage](cfg)
    result["pid"] = __import__("os").getpid()
    Path(out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
