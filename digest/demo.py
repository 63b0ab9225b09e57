"""`digest demo`: the whole pipeline on bundled sample feeds, with nothing running and no network."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from digest.clock import utcnow
from digest.config import Settings, SourceKind, url_is_local
from digest.db import init_db, make_engine, open_session
from digest.embed import embed_missing, load_embedder
from digest.ingest import ingest_bytes
from digest.models import Frequency, Preferences
from digest.pipeline import SendReport, run_send
from digest.send import OutboxTransport
from digest.subscribers import subscribe_active

SAMPLES = Path(__file__).resolve().parent / "samples"
DEMO_DATABASE = Path("demo.sqlite3")
DEMO_BASE_URL = "http://localhost:8000"
SEND_HOUR = 9  # UTC: every demo reader is due by then  # where `digest serve --demo` answers by default


def demo_settings(settings: Settings, database: Path = DEMO_DATABASE) -> Settings:
    """The settings `digest demo` writes its digests with and `digest serve --demo` serves them
    with, so that every link in the demo's emails opens on that server: the demo's database (and
    so the local key kept beside it), a local base URL (DIGEST_BASE_URL when it is local, else
    http://localhost:8000), the outbox and no broker (nothing a visitor does there leaves the machine)."""
    base_url = settings.base_url if url_is_local(settings.base_url) else DEMO_BASE_URL
    return settings.model_copy(
        update={"database_url": f"sqlite:///{database}", "base_url": base_url, "smtp_url": None, "broker_url": None}
    )


def port_of(base_url: str) -> int:
    """The port a base URL's links go to."""
    parts = urlsplit(base_url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def demo_readers(today: datetime) -> list[tuple[str, Preferences]]:
    """Four readers with different topics and schedules, all due at 09:00 UTC today: one with no
    topics (the trending papers), one with topics and the trending papers."""
    weekday = today.weekday()
    ada = Preferences(
        ['"long context" benchmark', '"KV cache" OR kv-cache'], Frequency.DAILY, 8, "Europe/London", trending=3
    )  # fmt: skip
    grace = Preferences(
        ['"in-context learning" OR ICL -survey', "cat:cs.CV segmentation"],
        Frequency.WEEKDAYS, 8, "Europe/Paris", max_papers=5,
    )  # fmt: skip
    alan = Preferences(
        ["title:agent OR multi-agent", 'code AND (repository OR "software engineering")'],
        Frequency.WEEKLY, 7, "UTC", weekly_day=weekday,
    )  # fmt: skip
    hedy = Preferences([], Frequency.DAILY, 9, "UTC", trending=10)
    return [
        ("ada@example.org", ada),
        ("grace@example.org", grace),
        ("alan@example.org", alan),
        ("hedy@example.org", hedy),
    ]


def demo_day(now: datetime) -> datetime:
    """Midnight UTC of the demo's day: the last one whose send time has passed, so the links in its
    digests are signed in the past (a link signed in the future does not work yet)."""
    return datetime.combine((now - timedelta(hours=SEND_HOUR)).date(), time(0), tzinfo=UTC)


def _reset(settings: Settings, database: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    if settings.outbox_dir.is_dir():
        for old in settings.outbox_dir.iterdir():
            if old.suffix in (".eml", ".html"):
                old.unlink()


def run(settings: Settings, database: Path = DEMO_DATABASE) -> SendReport:
    """Start clean, ingest the samples, add the demo readers, send through the outbox; report per reader."""
    _reset(settings, database)
    engine = make_engine(f"sqlite:///{database}")
    init_db(engine)
    today = demo_day(utcnow())
    fetched_at, send_at = today + timedelta(hours=6), today + timedelta(hours=SEND_HOUR)
    with open_session(engine) as session:
        ingest_bytes(
            session,
            (SAMPLES / "arxiv-listing.rss").read_bytes(),
            SourceKind.ARXIV_RSS,
            "arxiv-sample",
            fetched_at,
        )
        ingest_bytes(
            session,
            (SAMPLES / "hf-daily-papers.json").read_bytes(),
            SourceKind.HF_JSON,
            "hf-sample",
            fetched_at,
        )
        embedder = load_embedder(settings.embedding_model)
        if embedder is not None:  # no broker here: embedded in the run, as `digest fetch` does without one
            embed_missing(session, embedder)
        for email, prefs in demo_readers(today):
            subscribe_active(session, email, prefs, today - timedelta(days=7))
        report = run_send(session, settings, OutboxTransport(settings.outbox_dir), send_at)
    engine.dispose()
    topics = {
        email: "; ".join(prefs.topics) or f"trending (top {prefs.trending})" for email, prefs in demo_readers(today)
    }
    for line in report.lines:
        line.subject = topics.get(line.email, "")
    return report
