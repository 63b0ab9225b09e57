"""What crosses the benchmark's process boundaries and ends up in `latest.json`, as typed records:
the stage configs, each stage's result, the Celery runs, the smtp-source ceiling, the targets and the
whole run. `dumps` writes any of them as JSON (`dataclasses.asdict`), `load` reads them back.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from digest.config import Settings

T = TypeVar("T")


def dumps(record: Any) -> str:
    """A record (a dataclass instance) as indented JSON; datetimes as ISO 8601, paths as strings."""
    return json.dumps(asdict(record), indent=1, ensure_ascii=False, default=_plain)


def _plain(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load(kind: type[T], data: Any) -> T:
    """The record of type `kind` that `dumps` wrote as `data` (nested records, lists and dicts of
    them, datetimes and paths are rebuilt from their field types; a key the type lacks is an error)."""
    built: T = _load(kind, data)
    return built


def _load(hint: Any, value: Any) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if value is None:
        return None
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _load(inner[0], value) if len(inner) == 1 else value
    if origin is list:
        return [_load(args[0], v) for v in value]
    if origin is dict:
        return {k: _load(args[1], v) for k, v in value.items()}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        return hint(**{k: _load(hints.get(k), v) for k, v in value.items()})
    if hint is datetime:
        return datetime.fromisoformat(value)
    if hint is Path:
        return Path(value)
    return value


# ---- what each stage process is told -------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """What every stage and every worker shares: the database, the day's clock, the SMTP sink."""

    database_url: str
    now: datetime
    smtp_url: str
    batch_size: int = 200
    smtp_connections: int = 4
    profile_dir: Path | None = None  # set: the stage runs under cProfile and writes its profile here

    def settings(self, **changes: Any) -> Settings:
        """The Settings every stage and worker uses (no .env file is read)."""
        values: dict[str, Any] = {
            "database_url": self.database_url,
            "smtp_url": self.smtp_url,
            "broker_url": None,
            "sources": [],
            "from_address": "Paper Digest <digest@example.org>",
            "base_url": "https://digest.example.org",
            "secret_key": "bench-secret-key-of-32-bytes-at-least",
            "smtp_connections": self.smtp_connections,
            "send_batch_size": self.batch_size,
        }
        return Settings(_env_file=None, **{**values, **changes})


@dataclass(frozen=True, kw_only=True)
class StageConfig:
    """One stage's instructions (the stage's name is the class's)."""

    stage: ClassVar[str]
    setup: Setup


@dataclass(frozen=True, kw_only=True)
class MatchConfig(StageConfig):
    stage = "match"
    limit: int  # readers to match


@dataclass(frozen=True, kw_only=True)
class DigestConfig(StageConfig):
    stage = "digest"
    sample: int  # digests in the sample
    sample_message: Path  # where the digest of the mean size is written (for smtp-source)
    repeats: int = 3


@dataclass(frozen=True, kw_only=True)
class NaiveConfig(StageConfig):
    stage = "naive"
    sample: int


@dataclass(frozen=True, kw_only=True)
class EmbedConfig(StageConfig):
    stage = "embed"


@dataclass(frozen=True, kw_only=True)
class TrainConfig(StageConfig):
    stage = "train"


@dataclass(frozen=True, kw_only=True)
class E2eConfig(StageConfig):
    stage = "e2e"
    budget: float = 0.0  # seconds before the run stops and extrapolates; 0: no limit


# ---- what each stage measured ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class StageResult:
    """What every stage reports: its process's peak RSS, pid and lifetime (set by the parent)."""

    peak_rss_mb: float
    pid: int = 0
    process_wall_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class MatchResult(StageResult):
    subscribers: int
    papers: int
    distinct_topics_compiled: int
    index_build_s: float
    stream_load_s: float
    match_s: float
    match_cpu_s: float
    subscribers_per_s: float
    with_loading_subscribers_per_s: float
    nonempty_share: float
    mean_papers_shown: float
    mean_papers_matched: float
    rss_start_mb: float
    rss_after_index_mb: float
    rss_end_mb: float


@dataclass(frozen=True, kw_only=True)
class EmbedResult(StageResult):
    """`embed_missing` with the configured model over every paper without a vector."""

    model: str
    papers: int
    model_load_s: float
    wall_s: float
    cpu_s: float
    papers_per_s: float
    topic_texts: int = 0  # distinct like:"…" texts of the readers, embedded and stored after the papers
    topic_texts_s: float = 0.0


@dataclass(frozen=True, kw_only=True)
class TrainResult(StageResult):
    """`learning.retrain` for every reader with votes, one after the other (as the worker task
    runs it: votes and weak negatives read from the database, Newton steps, the model stored)."""

    readers: int
    models: int
    wall_s: float
    median_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True, kw_only=True)
class Rate:
    """One step timed over the sample: the median of the repeats."""

    per_s: float
    wall_ms_each: float
    cpu_ms_each: float
    runs_per_s: list[float]


@dataclass(frozen=True, kw_only=True)
class SendRate(Rate):
    connections: int
    outcomes: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class PerDigest:
    """The whole path from matched papers to bytes on the socket, once, with cold caches."""

    per_s: float
    wall_ms_each: float
    cpu_ms_each: float
    compose_cpu_ms_each: float
    send_cpu_ms_each: float
    caches: str
    outcomes: dict[str, int]


@dataclass(frozen=True, kw_only=True)
class PerDigestWarm(Rate):
    compose_cpu_ms_each: float
    send_cpu_ms_each: float
    caches: str


@dataclass(frozen=True, kw_only=True)
class DigestResult(StageResult):
    digests: int
    repeats: int
    mean_papers_per_digest: float
    mean_html_bytes: int
    mean_message_bytes: int
    typical_message_bytes: int
    render: Rate
    mime: Rate
    send: SendRate
    per_digest: PerDigest
    per_digest_warm: PerDigestWarm
    messages_sent: int
    render_note: str
    render_errors: int
    render_error_examples: list[str]


@dataclass(frozen=True, kw_only=True)
class NaiveResult(StageResult):
    digests: int
    per_s: float
    wall_ms_each: float
    cpu_ms_each: float
    steps_ms_each: dict[str, float]
    steps_cpu_ms_each: dict[str, float]


@dataclass(frozen=True, kw_only=True)
class E2eResult(StageResult):
    subscribers_processed: int
    chunks: int
    batch_size: int
    counts: dict[str, int]
    digests_sent: int
    wall_s: float
    cpu_s: float
    digests_per_s: float
    subscribers_per_s: float
    cpu_ms_per_digest: float
    median_chunk_s: float
    chunk_s: list[float]
    stopped_at_budget: bool


@dataclass(frozen=True, kw_only=True)
class CeleryResult:
    """One end-to-end run through real Celery worker processes."""

    workers: int
    queue: str
    subscribers: int
    settled: int
    counts: dict[str, int]
    digests_sent: int
    wall_s: float
    plan_s_until_first_row: float
    digests_per_s: float
    subscribers_per_s: float
    steady_subscribers_per_s: float
    projected_wall_s: float
    stopped_at_budget: bool
    worker_cpu_s: float
    cores_busy: float  # where the machine's cores went while the run lasted: the workers, smtp-sink, the rest
    worker_cores: float
    sink_cores: float
    cpu_ms_per_digest: float
    peak_rss_mb_by_process: dict[str, float]
    peak_rss_mb: float
    problems: dict[str, int]
    log_tails: dict[str, str]
    # Local PostgreSQL's processes and Redis over the run (0 with SQLite, or a server elsewhere).
    database_cores: float = 0.0
    broker_cores: float = 0.0


@dataclass(frozen=True, kw_only=True)
class Ceiling:
    """smtp-source → smtp-sink: the machine's SMTP ceiling at that moment."""

    msg_per_s: float
    runs_msg_per_s: list[float]
    sessions: int
    messages_per_run: int
    message_bytes: int
    connection_reuse: bool


# ---- the whole run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TopTopic:
    topic: str
    readers: int


@dataclass(frozen=True, kw_only=True)
class TopicStats:
    """How the generated readers' topics are spread."""

    readers: int
    distinct_topics: int
    topics_per_reader: float
    top_topics: list[TopTopic]
    semantic_readers: int = 0  # readers with a `like:` topic


@dataclass(frozen=True, kw_only=True)
class GenerateStats(TopicStats):
    seconds: float
    queries_defined: int
    voters: int = 0  # readers with votes
    earlier_papers: int = 0  # papers of the last weeks (examples, votes)

    @classmethod
    def of(cls, topics: TopicStats, **more: Any) -> GenerateStats:
        return cls(**more, **vars(topics))


@dataclass(frozen=True, kw_only=True)
class Stages:
    embed: EmbedResult
    train: TrainResult
    match_quarter: MatchResult  # the match stage at N/4, for the memory growth
    match: MatchResult
    digest: DigestResult
    naive: NaiveResult
    e2e: E2eResult

    def by_name(self) -> dict[str, StageResult]:
        """Every stage's result, by the stage's key in the report."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(frozen=True, kw_only=True)
class Target:
    """One target of issue 5 next to what this run measured; `passed` is None when it was not run."""

    id: str
    target: str
    goal: str
    measured: float | None
    shown: str
    passed: bool | None
    note: str = ""


@dataclass(frozen=True, kw_only=True)
class Meta:
    started: str
    finished: str
    subscribers: int
    papers: int
    seed: int
    quick: bool
    budget_s: float
    database: str
    redis: str
    git_commit: str
    code_fingerprint: str
    code_uncommitted_changes: bool
    code_changed_during_run: bool
    python: str
    cpus: int
    load_average: list[float]
    smtp_tools: dict[str, str]
    profiles: dict[str, str]
    total_wall_s: float = 0.0
    learning: bool = True  # False: `--without-learning` (no like: topics, no votes)


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """Everything one `python -m bench` measured: what `latest.json` holds."""

    meta: Meta
    generate: GenerateStats
    smtp_source: Ceiling
    stages: Stages
    celery: dict[str, CeleryResult]  # by the number of worker processes: "1", "2"
    targets: list[Target] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
