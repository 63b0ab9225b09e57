"""Prometheus metrics, read from the database at scrape time.

The database is the source of truth for every worker on every machine, so one scrape of any web
process sees the whole deployment — no per-process counters to add up."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from digest.db import open_session
from digest.models import Delivery, DeliveryStatus, Notice, SourceState, Suppression

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
LATENCY_WINDOW = timedelta(hours=1)


class DatabaseCollector(Collector):
    """Collects the digest metrics from the database on each scrape."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine = engine
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        with open_session(self.engine) as session:
            states = list(session.exec(select(SourceState)))
            deliveries = session.execute(sa_select(col(Delivery.status), func.count()).group_by(col(Delivery.status)))
            notices = session.execute(sa_select(col(Notice.status), func.count()).group_by(col(Notice.status)))
            suppressed = session.execute(sa_select(func.count()).select_from(Suppression)).scalar_one()
            since = self.clock() - LATENCY_WINDOW
            timings = session.execute(
                sa_select(col(Delivery.claimed_at), col(Delivery.sent_at)).where(
                    col(Delivery.status) == DeliveryStatus.SENT, col(Delivery.sent_at) >= since
                )
            ).all()
            yield from _sources(states)
            yield _by_status("digest_deliveries", "Digests by delivery status (all time).", deliveries)
            yield _by_status("digest_notices", "Sign-up emails by delivery status (all time).", notices)
        yield GaugeMetricFamily("digest_suppressed_addresses", "Addresses never to be mailed again.", value=suppressed)
        yield _latency([(sent - claimed).total_seconds() for claimed, sent in timings if claimed and sent])


def _sources(states: list[SourceState]) -> Iterator[Metric]:
    papers = CounterMetricFamily("digest_papers_ingested", "New papers ingested per source.", labels=["source"])
    failures = CounterMetricFamily("digest_source_failures", "Failed fetch runs per source.", labels=["source"])
    streak = GaugeMetricFamily(
        "digest_source_consecutive_failures", "Failed fetch runs in a row per source.", labels=["source"]
    )
    for state in states:
        papers.add_metric([state.name], state.papers_total or 0)
        failures.add_metric([state.name], state.failures_total or 0)
        streak.add_metric([state.name], state.consecutive_failures)
    yield from (papers, failures, streak)


def _by_status(name: str, doc: str, rows: object) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=["status"])
    for status, count in rows:  # type: ignore[attr-defined]
        family.add_metric([str(status)], int(count))
    return family


def _latency(seconds: list[float]) -> GaugeHistogramMetricFamily:
    buckets = [(str(bound), float(sum(1 for s in seconds if s <= bound))) for bound in LATENCY_BUCKETS]
    buckets.append(("+Inf", float(len(seconds))))
    return GaugeHistogramMetricFamily(
        "digest_send_latency_seconds",
        "From claim to the relay's 250, for digests sent in the last hour.",
        buckets=buckets,
        gsum_value=sum(seconds),
    )
