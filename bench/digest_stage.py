"""The digest stage: render (`render_digest`), MIME (`build_message`) and send (`SmtpTransport` to
smtp-sink), each timed alone on the same sample, and the whole per-digest path
(`compose.digest_message` + send) first with cold caches, then warm."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field

from bench.measure import Clock, Timing, median_rate, peak_rss_mb, profiled, timed
from bench.records import DigestConfig, DigestResult, PerDigest, PerDigestWarm, SendRate
from bench.sample import Sample, deliver, digest_headers, digest_sample, reader_context
from digest import compose
from digest.config import Settings
from digest.db import make_engine
from digest.match import PaperIndex, annotate
from digest.mime import build_message, envelope_sender
from digest.render import RenderedDigest, environment, render_digest
from digest.send import Outgoing, SmtpTransport, Transport


@dataclass
class _PathRun:
    """The whole per-digest path (compose + send) over the sample: its clocks and outcomes."""

    total: Clock = field(default_factory=Clock)
    compose: Clock = field(default_factory=Clock)
    outcomes: Counter[str] = field(default_factory=Counter)


@dataclass
class _ColdPath(_PathRun):
    """The first pass: which digests composed (the sample from then on) and which did not."""

    sample: Sample = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _cold_path(settings: Settings, transport: Transport, index: PaperIndex, candidates: Sample) -> _ColdPath:
    """The whole path from matched papers to bytes on the socket, as the pipeline runs it, with every
    cache of this process cold (the figure the target is judged on); a digest that cannot be composed
    is counted and left out of everything that follows (the pipeline marks it `failed`)."""
    cold = _ColdPath()
    outgoing: list[Outgoing] = []
    with cold.total.run():
        with cold.compose.run():
            for sub, row in candidates:
                try:
                    outgoing.append(compose.digest_message(settings, sub, row.id or 0, row, index))
                except Exception as exc:
                    cold.errors.append(f"subscriber {sub.id} {sub.topics}: {type(exc).__name__}: {exc}")
                    continue
                cold.sample.append((sub, row))
        cold.outcomes += deliver(transport, outgoing)
    if not cold.sample:
        raise RuntimeError("no subscriber in the sample has a digest that renders")
    return cold


def _warm_paths(
    settings: Settings, transport: Transport, index: PaperIndex, sample: Sample, reps: int
) -> list[_PathRun]:
    """The same path again, with this process's caches warm (cards, words, topics already seen)."""
    runs = []
    for _ in range(max(1, reps - 1)):
        run = _PathRun()
        with run.total.run():
            with run.compose.run():
                outgoing = [compose.digest_message(settings, sub, row.id or 0, row, index) for sub, row in sample]
            run.outcomes += deliver(transport, outgoing)
        runs.append(run)
    return runs


@dataclass
class _Steps:
    """Render, MIME and send, each timed alone over the sample, and what the last runs made."""

    render: list[Timing]
    mime: list[Timing]
    send: list[Timing]
    rendered: list[RenderedDigest]
    data: list[bytes]
    outcomes: Counter[str]


def _steps(settings: Settings, transport: Transport, index: PaperIndex, sample: Sample, reps: int) -> _Steps:
    """render_digest, build_message and the transport, each step `reps` times on its own."""
    contexts = [reader_context(settings, sub, row) for sub, row in sample]
    matches = [annotate(index, sub.topics, row.paper_ids, row.trending_count) for sub, row in sample]
    render, rendered = timed(
        reps,
        lambda: [
            render_digest(settings.templates_dir, ctx, m, row.more_count)
            for ctx, m, (_sub, row) in zip(contexts, matches, sample, strict=True)
        ],
    )
    heads = [
        digest_headers(settings, sub, row, ctx.unsubscribe_url)
        for ctx, (sub, row) in zip(contexts, sample, strict=True)
    ]
    mime, data = timed(reps, lambda: [build_message(r, h) for r, h in zip(rendered, heads, strict=True)])
    send, outcomes = _time_send(transport, envelope_sender(settings.from_address), data, sample, reps)
    return _Steps(render, mime, send, rendered, data, outcomes)


def _time_send(
    transport: Transport, sender: str, data: list[bytes], sample: Sample, reps: int
) -> tuple[list[Timing], Counter[str]]:
    """The transport alone: the built messages handed over `reps` times."""
    timings, outcomes = [], Counter[str]()
    for _ in range(reps):
        messages = [
            Outgoing(key=row.id or 0, sender=sender, recipient=sub.email, data=d, name=str(row.id))
            for d, (sub, row) in zip(data, sample, strict=True)
        ]
        clock = Clock()
        with clock.run():
            outcomes += deliver(transport, messages)
        timings.append((clock.wall, clock.cpu))
    return timings, outcomes


def stage_digest(cfg: DigestConfig) -> DigestResult:
    """Render, MIME, send and the whole per-digest path, each timed alone on the same sample."""
    settings = cfg.setup.settings()
    assert settings.smtp is not None
    engine = make_engine(settings.database_url)
    index, candidates = digest_sample(settings, engine, cfg.setup.now, cfg.sample)
    environment(settings.templates_dir)  # compile the templates (once per process, as in a worker)
    transport = SmtpTransport(settings.smtp, timeout=settings.smtp_timeout, connections=settings.smtp_connections)
    with profiled(cfg.setup.profile_dir, "per_digest"):
        cold = _cold_path(settings, transport, index, candidates)
    steps = _steps(settings, transport, index, cold.sample, cfg.repeats)
    warm = _warm_paths(settings, transport, index, cold.sample, cfg.repeats)
    mean_size = statistics.mean(len(d) for d in steps.data)
    typical = min(steps.data, key=lambda d: abs(len(d) - mean_size))  # the digest closest to the mean size
    cfg.sample_message.write_bytes(typical)
    engine.dispose()
    return _digest_result(settings, cfg.repeats, cold, steps, warm, typical)


def _per_digest(cold: _ColdPath, warm: list[_PathRun]) -> PerDigest:
    n = len(cold.sample)
    return PerDigest(
        per_s=round(n / cold.total.wall, 1),
        wall_ms_each=round(1000 * cold.total.wall / n, 3),
        cpu_ms_each=round(1000 * cold.total.cpu / n, 3),
        compose_cpu_ms_each=round(1000 * cold.compose.cpu / n, 3),
        send_cpu_ms_each=round(1000 * (cold.total.cpu - cold.compose.cpu) / n, 3),
        caches="cold at the start: a fresh process's first digests, in reader order",
        outcomes=dict(sum((run.outcomes for run in warm), cold.outcomes)),
    )


def _per_digest_warm(warm: list[_PathRun], n: int) -> PerDigestWarm:
    path = median_rate([(run.total.wall, run.total.cpu) for run in warm], n)
    compose_ms = 1000 * statistics.median(run.compose.cpu for run in warm) / n
    return PerDigestWarm(
        **vars(path),
        compose_cpu_ms_each=round(compose_ms, 3),
        send_cpu_ms_each=round(path.cpu_ms_each - compose_ms, 3),
        caches="warm: the same digests again",
    )


def _digest_result(
    settings: Settings, reps: int, cold: _ColdPath, steps: _Steps, warm: list[_PathRun], typical: bytes
) -> DigestResult:
    n = len(cold.sample)
    paths_sent = sum(cold.outcomes.values()) + sum(sum(run.outcomes.values()) for run in warm)
    return DigestResult(
        digests=n,
        repeats=reps,
        mean_papers_per_digest=round(sum(len(r.paper_ids) for _s, r in cold.sample) / n, 1),
        mean_html_bytes=round(statistics.mean(len(r.html.encode()) for r in steps.rendered)),
        mean_message_bytes=round(statistics.mean(len(d) for d in steps.data)),
        typical_message_bytes=len(typical),
        render=median_rate(steps.render, n),
        mime=median_rate(steps.mime, n),
        send=SendRate(
            **vars(median_rate(steps.send, n)),
            connections=settings.smtp_connections,
            outcomes=dict(steps.outcomes),
        ),
        per_digest=_per_digest(cold, warm),
        per_digest_warm=_per_digest_warm(warm, n),
        messages_sent=sum(steps.outcomes.values()) + paths_sent,
        render_note="render/MIME/send: median of the repeats, after the cold pass (caches warm)",
        render_errors=len(cold.errors),
        render_error_examples=cold.errors[:5],
        peak_rss_mb=peak_rss_mb(),
    )
