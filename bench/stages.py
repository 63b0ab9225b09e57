"""The measured stages, each run in a process of its own (`python -m bench.stages STAGE CONFIG OUT`),
so that the peak RSS it reports is that stage's alone. Every stage calls the project's real code.

- embed:   `embed_missing` with the configured model over every paper without a vector
- train:   `learning.retrain` for every reader with votes, one after the other
- match:   build the PaperIndex once, then `digest.match.pick` for every subscriber, streamed in
           batches with what their votes teach (`learned_for`, as a send chunk reads it)
- digest:  on a sample of real selections: render (`render_digest`), MIME (`build_message`), send
           (`SmtpTransport` to smtp-sink), and the whole per-digest path (`compose.digest_message` + send)
- naive:   the same sample the naive way: premailer per email, stdlib EmailMessage, one smtplib connection
- e2e:     the real `plan_due` + `send_chunk` loop (what `digest send` runs) over every subscriber

Each stage reads its config record and writes its result record (bench/records.py) as JSON. The
digest and naive stages live in bench/digest_stage.py and bench/naive.py, on the sample of
bench/sample.py, measured with bench/measure.py.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bench.digest_stage import stage_digest
from bench.measure import Clock, peak_rss_mb, profiled, rss_mb
from bench.naive import stage_naive
from bench.records import (
    DigestConfig,
    E2eConfig,
    E2eResult,
    EmbedConfig,
    EmbedResult,
    MatchConfig,
    MatchResult,
    NaiveConfig,
    StageResult,
    TrainConfig,
    TrainResult,
    dumps,
    load,
)
from digest.clock import utcnow
from digest.config import Settings
from digest.db import make_engine, open_session
from digest.embed import embed_missing, load_embedder
from digest.index import load_index, semantics_for, text_vectors
from digest.learning import learned_for, retrain
from digest.match import PaperIndex, pick
from digest.models import Frequency, Preferences, Subscriber, Vote
from digest.pipeline import send_chunk
from digest.plan import Window, plan_due, window_end
from digest.rank import judge_all
from digest.schedule import Schedule, previous_slot
from digest.semantic import like_texts
from digest.send import Outcome, Transport, make_transport

STREAM_BATCH = 2_000
LOOKBACK = timedelta(days=Settings.model_fields["upvote_lookback_days"].default)


# ---- embed and train: what the worker tasks after ingest and after votes do ----------------------


def stage_embed(cfg: EmbedConfig) -> EmbedResult:
    """Load the configured model, then embed every paper without a vector, as `digest embed` does."""
    settings = cfg.setup.settings()
    engine = make_engine(settings.database_url)
    loading, embedding = Clock(), Clock()
    with loading.run():
        embedder = load_embedder(settings.embedding_model)
    if embedder is None:
        raise SystemExit("the benchmark needs an embedding model (DIGEST_EMBEDDING_MODEL is none)")
    with profiled(cfg.setup.profile_dir, "embed"), embedding.run(), open_session(engine) as session:
        stored = embed_missing(session, embedder)
    # What the send runs of earlier days left stored: each like:"…" text's vector (embedded once ever).
    texts, topics_clock = _topic_texts(engine), Clock()
    with topics_clock.run():
        text_vectors(engine, embedder.name, texts)
    engine.dispose()
    return EmbedResult(
        model=embedder.name, papers=stored, model_load_s=round(loading.wall, 2), wall_s=round(embedding.wall, 2),
        cpu_s=round(embedding.cpu, 2), papers_per_s=round(stored / embedding.wall, 1) if embedding.wall else 0.0,
        topic_texts=len(texts), topic_texts_s=round(topics_clock.wall, 2), peak_rss_mb=peak_rss_mb(),
    )  # fmt: skip


def _topic_texts(engine: Engine) -> list[str]:
    """Every distinct like:"…" text of the readers' topics."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return like_texts(t for (topics,) in conn.execute(sa_select(table.c.topics)) for t in topics)


def stage_train(cfg: TrainConfig) -> TrainResult:
    """`retrain` for every reader with votes, each timed on its own."""
    settings = cfg.setup.settings()
    engine = make_engine(settings.database_url)
    took: list[float] = []
    models = 0
    with open_session(engine) as session:
        query = sa_select(col(Vote.subscriber_id)).distinct().order_by(col(Vote.subscriber_id))
        voters = list(session.execute(query).scalars())
        t0 = time.perf_counter()
        with profiled(cfg.setup.profile_dir, "train"):
            for sid in voters:
                began = time.perf_counter()
                models += retrain(session, settings, sid, cfg.setup.now) is not None
                took.append(1000 * (time.perf_counter() - began))
        wall = time.perf_counter() - t0
    engine.dispose()
    ranked = sorted(took) or [0.0]
    return TrainResult(
        readers=len(voters), models=models, wall_s=round(wall, 2), median_ms=round(statistics.median(ranked), 2),
        p95_ms=round(ranked[int(0.95 * (len(ranked) - 1))], 2), max_ms=round(ranked[-1], 2), peak_rss_mb=peak_rss_mb(),
    )  # fmt: skip


# ---- match: pick() for every reader ------------------------------------------------------------


def _stream(engine: Engine, limit: int) -> Iterator[Sequence[Any]]:
    """Subscribers (id, topics, min_upvotes, max_papers, trending) in id order, STREAM_BATCH at a time."""
    table = Subscriber.__table__  # type: ignore[attr-defined]
    last, left = 0, limit
    with engine.connect() as conn:
        while left > 0:
            query = (
                sa_select(table.c.id, table.c.topics, table.c.min_upvotes, table.c.max_papers, table.c.trending)
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


def previous_slot_start(now: datetime) -> datetime:
    """Where a daily 00:00 UTC reader's window starts when their previous digest went out on time."""
    return previous_slot(Schedule(Frequency.DAILY, 0, "UTC"), now).due


@dataclass
class _Matched:
    """What matching every streamed reader found, and where the time went."""

    load: Clock = field(default_factory=Clock)
    match: Clock = field(default_factory=Clock)
    readers: int = 0
    nonempty: int = 0
    shown: int = 0
    matched: int = 0


def _match_readers(
    index: PaperIndex, batches: Iterator[Sequence[Any]], window: Window, taught: Callable[[list[int]], dict[int, Any]]
) -> _Matched:
    """`pick` for every reader of every batch (what `pipeline.select_for` runs), with what each
    batch's votes teach (`taught`, read as a send chunk reads it); loading and matching timed apart."""
    seen = _Matched()
    readers = nonempty = shown = matched = 0
    while True:
        with seen.load.run():
            rows = next(batches, None)
            learned = taught([row[0] for row in rows]) if rows else {}
            if rows and index.semantics is not None:  # as `pipeline.chunk_index` does for a chunk
                index.semantics.prefetch(like_texts(t for row in rows for t in row[1]))
        if rows is None:
            break
        with seen.match.run():
            if index.vectors is not None:  # matching work, as `pipeline.send_chunk` does per chunk
                learned = judge_all(learned, index.vectors.matrix)
            for sid, topics, min_upvotes, cap, trending in rows:
                prefs = Preferences(topics, min_upvotes=min_upvotes, max_papers=cap, trending=trending)
                chosen = pick(
                    index, prefs, window.start, window.end, lookback=LOOKBACK, learned=learned.get(sid), explain=False
                )  # as `pipeline.select_for` records a digest
                readers += 1
                if found := chosen.matches:
                    nonempty += 1
                    shown += len(found)
                    matched += len(found) + chosen.topical.more
    seen.readers, seen.nonempty, seen.shown, seen.matched = readers, nonempty, shown, matched
    return seen


def stage_match(cfg: MatchConfig) -> MatchResult:
    """Build the index once, then select() for the first `limit` subscribers, streamed in batches."""
    settings = cfg.setup.settings()
    engine = make_engine(settings.database_url)
    window = Window(previous_slot_start(cfg.setup.now), window_end(settings, cfg.setup.now))
    rss_start = rss_mb()
    index_clock = Clock()
    with index_clock.run(), open_session(engine) as session:
        since = window.start - timedelta(days=3650)
        index = load_index(session, since, window.end, semantics=semantics_for(settings, engine))
    rss_after_index = rss_mb()
    with profiled(cfg.setup.profile_dir, "match"), open_session(engine) as session:

        def taught(ids: list[int]) -> dict[int, Any]:  # as `plan.plan_chunk` reads a chunk's
            return dict(learned_for(session, settings, ids, cfg.setup.now))

        seen = _match_readers(index, _stream(engine, cfg.limit), window, taught)
    engine.dispose()
    return MatchResult(
        subscribers=seen.readers,
        papers=len(index.papers),
        distinct_topics_compiled=len(getattr(index, "_topics", {})),
        index_build_s=round(index_clock.wall, 3),
        stream_load_s=round(seen.load.wall, 3),
        match_s=round(seen.match.wall, 3),
        match_cpu_s=round(seen.match.cpu, 3),
        subscribers_per_s=round(seen.readers / seen.match.wall, 1) if seen.match.wall else 0.0,
        with_loading_subscribers_per_s=round(seen.readers / (seen.match.wall + seen.load.wall), 1),
        nonempty_share=round(seen.nonempty / max(1, seen.readers), 3),
        mean_papers_shown=round(seen.shown / max(1, seen.nonempty), 1),
        mean_papers_matched=round(seen.matched / max(1, seen.nonempty), 1),
        rss_start_mb=rss_start,
        rss_after_index_mb=rss_after_index,
        rss_end_mb=rss_mb(),
        peak_rss_mb=peak_rss_mb(),
    )


# ---- e2e: what `digest send` runs ----------------------------------------------------------------


@dataclass
class _Sent:
    """How far the one-process send got."""

    counts: Counter[str] = field(default_factory=Counter)
    processed: int = 0
    chunk_walls: list[float] = field(default_factory=list)
    stopped_early: bool = False


def _send_day(session: Session, settings: Settings, transport: Transport, now: datetime, budget: float) -> _Sent:
    """plan_due + send_chunk, chunk after chunk, until every reader is done or the budget is spent."""
    sent = _Sent()
    t0 = time.perf_counter()
    for ids in plan_due(session, now, settings.send_batch_size):
        began = time.perf_counter()
        report = send_chunk(session, settings, transport, ids, now, clock=utcnow)
        sent.chunk_walls.append(time.perf_counter() - began)
        sent.counts.update(report.counts)
        sent.processed += len(ids)
        if budget and time.perf_counter() - t0 > budget:
            sent.stopped_early = True
            break
    return sent


def stage_e2e(cfg: E2eConfig) -> E2eResult:
    """What `digest send` runs: plan_due pages through the readers, send_chunk composes, claims,
    renders and sends each chunk to smtp-sink; stops early (and says so) past the time budget."""
    settings = cfg.setup.settings()
    engine = make_engine(settings.database_url)
    transport = make_transport(settings)
    clock = Clock()
    with profiled(cfg.setup.profile_dir, "send_chunk"), clock.run(), open_session(engine) as session:
        done = _send_day(session, settings, transport, cfg.setup.now, cfg.budget)
    engine.dispose()
    sent = done.counts.get(Outcome.SENT.value, 0)
    walls = done.chunk_walls
    return E2eResult(
        subscribers_processed=done.processed,
        chunks=len(walls),
        batch_size=settings.send_batch_size,
        counts=dict(done.counts),
        digests_sent=sent,
        wall_s=round(clock.wall, 2),
        cpu_s=round(clock.cpu, 2),
        digests_per_s=round(sent / clock.wall, 1),
        subscribers_per_s=round(done.processed / clock.wall, 1),
        cpu_ms_per_digest=round(1000 * clock.cpu / max(1, sent), 3),
        median_chunk_s=round(statistics.median(walls), 3) if walls else 0.0,
        chunk_s=[round(w, 2) for w in walls[:100]],
        stopped_at_budget=done.stopped_early,
        peak_rss_mb=peak_rss_mb(),
    )


# ---- the stage process ---------------------------------------------------------------------------------

STAGES: dict[str, Callable[[Any], StageResult]] = {
    EmbedConfig.stage: lambda data: stage_embed(load(EmbedConfig, data)),
    TrainConfig.stage: lambda data: stage_train(load(TrainConfig, data)),
    MatchConfig.stage: lambda data: stage_match(load(MatchConfig, data)),
    DigestConfig.stage: lambda data: stage_digest(load(DigestConfig, data)),
    NaiveConfig.stage: lambda data: stage_naive(load(NaiveConfig, data)),
    E2eConfig.stage: lambda data: stage_e2e(load(E2eConfig, data)),
}


def main(argv: list[str]) -> int:
    """`python -m bench.stages STAGE CONFIG.json OUT.json`: run one stage, write its result."""
    stage, config, out = argv
    result = STAGES[stage](json.loads(Path(config).read_text()))
    Path(out).write_text(dumps(replace(result, pid=os.getpid())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
