"""The `digest` command: each subcommand is one call into the library."""

from __future__ import annotations

import json
import logging
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlmodel import Session, col, func, select

from digest import demo as demo_module
from digest import health, logs
from digest import suppress as suppression
from digest.archive import remove_old
from digest.clock import utcnow
from digest.config import Settings, SourceKind, links_in_clear
from digest.db import init_db, make_engine, open_session
from digest.embed import embed_missing, load_embedder, missing
from digest.ingest import SourceReport, ingest_bytes
from digest.models import DEFAULT_PREFERENCES as DEFAULTS
from digest.models import TRENDING_DEFAULT, Frequency, Paper, Preferences, Subscriber
from digest.parse import FeedError
from digest.pipeline import SendReport, run_fetch, run_send
from digest.pipeline import preview as preview_digest
from digest.secret import SecretError, ensure_secret
from digest.send import make_transport
from digest.signup import cleanup_pending
from digest.subscribers import SubscriberError, by_email, normalize_email, subscribe_active
from digest.subscribers import unsubscribe as unsubscribe_sub

log = logging.getLogger(__name__)
app = typer.Typer(help="Daily research-paper digest.", no_args_is_help=True, add_completion=False)
TRENDING_OPTION = "--trending"
EMBED_TASK = "digest.embed_papers"  # the workers' task (workers/tasks.py), sent by name
out = Console(soft_wrap=True)
err = Console(stderr=True)


def fail(message: str) -> NoReturn:
    """One clear line on stderr and a non-zero exit; never a traceback for a user error."""
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(1)


def load_settings(*, demo: bool = False) -> Settings:
    """Settings from the environment, or a one-line error naming the bad variable; with `demo`,
    those of the demo's own data (`demo.demo_settings`)."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fail(
            f"bad configuration DIGEST_{where.upper()}: {first['msg']}"
            if where
            else f"bad configuration: {first['msg']}"
        )
    logs.configure(logging.getLogger().level or logging.WARNING, settings.log_json)
    if demo:
        settings = demo_module.demo_settings(settings)
    try:
        return ensure_secret(settings)
    except SecretError as exc:
        fail(str(exc))


def warn_if_links_in_clear(settings: Settings) -> None:
    """Once, as a command that sends mail or serves the pages starts: a warning when the links
    would travel unencrypted (DIGEST_BASE_URL not https and not this machine)."""
    if warning := links_in_clear(settings.base_url):
        log.warning(warning)


@contextmanager
def session_for(settings: Settings) -> Iterator[Session]:
    """A session on the configured database, with the schema in place."""
    engine = make_engine(settings.database_url)
    init_db(engine)
    with open_session(engine) as session:
        yield session
    engine.dispose()


def parse_now(value: str | None) -> datetime:
    """`--now` as an aware UTC datetime (naive means UTC)."""
    if value is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now {value!r} is not an ISO 8601 time like 2026-11-29T08:00:00+00:00")
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


@app.callback()
def main_options(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log progress details.")] = False,
) -> None:
    """Configure logging for every subcommand."""
    logs.configure(logging.INFO if verbose else logging.WARNING)
    logs.new_run("cli")


@app.command("init-db")
def init_db_command() -> None:
    """Create the database tables (safe to run twice)."""
    settings = load_settings()
    with session_for(settings):
        pass
    out.print(f"database ready: {settings.database_url}")


def _source_table(reports: list[SourceReport]) -> Table:
    table = Table("source", "status", "new", "updated", "notes")
    for r in reports:
        status = "not modified" if r.not_modified and r.ok else ("ok" if r.ok else "[red]failed[/]")
        notes = r.error or (f"{len(r.problems)} entries skipped" if r.problems else "")
        table.add_row(r.name, status, str(r.new), str(r.updated), notes)
    return table


@app.command()
def fetch(
    source: Annotated[str | None, typer.Option(help="Only this configured source.")] = None,
    file: Annotated[Path | None, typer.Option(help="Ingest a saved feed file instead of fetching.")] = None,
    kind: Annotated[SourceKind | None, typer.Option(help="Format of --file.")] = None,
) -> None:
    """Fetch the configured sources (or ingest a saved feed file) and store new papers."""
    settings = load_settings()
    now = utcnow()
    if file is not None:
        _fetch_file(settings, file, kind, source, now)
        return
    if source is not None and source not in {s.name for s in settings.sources}:
        fail(f"no source named {source!r}; configured: {', '.join(s.name for s in settings.sources)}")
    with session_for(settings) as session:
        with out.status("fetching sources…"):
            reports = run_fetch(session, settings, now, only=source)
        out.print(_source_table(reports))
        embed_new(session, settings, sum(r.new for r in reports))
    if not any(r.ok for r in reports):
        raise typer.Exit(1)


def _fetch_file(settings: Settings, file: Path, kind: SourceKind | None, source: str | None, now: datetime) -> None:
    if kind is None:
        fail("--file needs --kind (arxiv-rss, arxiv-atom, hf-json or rss)")
    try:
        content = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror or exc}")
    name = source or f"file:{kind.value}"
    with session_for(settings) as session:
        try:
            result, new, updated = ingest_bytes(session, content, kind, name, now)
        except FeedError as exc:
            fail(f"{file}: {exc}")
        skipped = f", {len(result.skipped)} skipped" if result.skipped else ""
        out.print(f"{file}: {len(result.papers)} papers parsed, {new} new, {updated} updated{skipped}")
        if result.warning:
            err.print(f"warning: {result.warning}", highlight=False)
        embed_new(session, settings, new)


def embed_with_progress(session: Session, settings: Settings) -> int:
    """Embed every paper still without a vector of the configured model, with a progress bar."""
    embedder = load_embedder(settings.embedding_model)
    total = 0 if embedder is None else missing(session, embedder.name)
    if embedder is None or not total:
        return 0
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"embedding papers ({embedder.name})", total=total)
        return embed_missing(session, embedder, progress=lambda n: progress.advance(task, n))


def embed_inline(session: Session, settings: Settings) -> int:
    """Without a broker (the embedded mode) papers are embedded in the run that needs them; with
    one, the workers' `digest.embed_papers` task does it, never delaying a command. A failure is a
    warning, never the command's: the papers stay as they are and `digest embed` tries again."""
    if settings.broker_url or settings.embedding_model == "none":
        return 0
    try:
        return embed_with_progress(session, settings)
    except Exception as exc:
        session.rollback()
        err.print(f"warning: embedding failed ({exc}); `digest embed` tries again", highlight=False)
        return 0


def embed_new(session: Session, settings: Settings, new: int) -> None:
    """After a fetch stored `new` papers: embed them here, or prompt the workers to."""
    if not new or settings.embedding_model == "none":
        return
    if not settings.broker_url:
        if embedded := embed_inline(session, settings):
            out.print(f"{embedded} papers embedded ({settings.embedding_model})")
        return
    from digest.web.dispatch import celery_client

    try:
        celery_client(settings).send_task(EMBED_TASK, retry=False)
    except Exception as exc:
        err.print(f"warning: could not enqueue {EMBED_TASK} (beat runs it hourly): {exc}", highlight=False)


def paper_json(paper: Paper) -> dict[str, object]:
    """The public JSON shape of a paper."""
    return {
        "id": paper.id,
        "title": paper.title,
        "authors": paper.authors,
        "abstract": paper.abstract,
        "categories": paper.categories,
        "published": paper.published.isoformat() if paper.published else None,
        "url": paper.abs_url,
        "pdf_url": paper.pdf_url,
        "upvotes": paper.upvotes,
        "sources": paper.sources,
    }


@app.command()
def papers(
    since: Annotated[str | None, typer.Option(help="Only papers first seen on or after this date.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List stored papers, newest first."""
    settings = load_settings()
    query = select(Paper).order_by(col(Paper.first_seen).desc(), col(Paper.id))
    if since:
        try:
            start = datetime.combine(date.fromisoformat(since), datetime.min.time(), tzinfo=UTC)
        except ValueError:
            fail(f"--since {since!r} is not a date like 2026-11-29")
        query = query.where(col(Paper.first_seen) >= start)
    with session_for(settings) as session:
        rows = list(session.exec(query))
    if as_json:
        sys.stdout.write(json.dumps([paper_json(p) for p in rows], ensure_ascii=False, indent=2) + "\n")
        return
    table = Table("id", "title", "upvotes", "sources")
    for p in rows:
        table.add_row(p.id, p.title[:80], "" if p.upvotes is None else str(p.upvotes), ", ".join(p.sources))
    out.print(table)


@app.command()
def subscribe(
    email: str,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", "-t", help="A topic query; repeat for more. None: trending only.")
    ] = None,
    trending: Annotated[
        int | None,
        typer.Option(
            TRENDING_OPTION,
            metavar="[N]",
            help=f"Also the top N papers on Hugging Face by upvotes (alone: {TRENDING_DEFAULT}; on without topics).",
        ),
    ] = None,
    frequency: Annotated[Frequency, typer.Option(help="daily, weekdays or weekly.")] = DEFAULTS.frequency,
    hour: Annotated[int, typer.Option(help="Local hour to send (0-23).")] = DEFAULTS.send_hour,
    tz: Annotated[str, typer.Option(help="IANA time zone, e.g. Europe/Paris.")] = DEFAULTS.timezone,
    weekly_day: Annotated[int, typer.Option(help="Day for weekly digests, 0=Monday.")] = DEFAULTS.weekly_day,
    min_upvotes: Annotated[
        int | None, typer.Option(help="Only papers with at least this many upvotes.")
    ] = DEFAULTS.min_upvotes,
    cap: Annotated[int, typer.Option(help="At most this many papers per email.")] = DEFAULTS.max_papers,
) -> None:
    """Add (or update) a subscriber, active at once (admin; readers use the web signup)."""
    settings = load_settings()
    prefs = Preferences(topic or [], frequency, hour, tz, weekly_day, min_upvotes, cap, trending)
    with session_for(settings) as session:
        try:
            sub = subscribe_active(session, email, prefs, utcnow())
        except SubscriberError as exc:
            fail(str(exc))
    out.print(f"{sub.email} is subscribed ({sub.frequency}, {sub.send_hour:02d}:00 {sub.timezone}) {reading(sub)}")


def reading(sub: Subscriber) -> str:
    """'to: topic; topic; plus the trending papers (top 5)' — what a subscriber gets, in a phrase."""
    trending = f"the trending papers (top {sub.trending})" if sub.trending else ""
    if not sub.topics:
        return f"to {trending}"
    topics = "to: " + "; ".join(sub.topics)
    return f"{topics}; plus {trending}" if trending else topics


# `subscribe`'s options that take a value: the word after one of them is that value, never an option.
_VALUE_OPTIONS = frozenset({"--topic", "-t", "--frequency", "--hour", "--tz", "--weekly-day", "--min-upvotes", "--cap"})
_NUMBER = re.compile(r"-?[0-9]+")


def with_trending_values(argv: Sequence[str]) -> list[str]:
    """The arguments with a value after every bare `subscribe … --trending`: Typer options have no
    optional values, so `--trending` alone (at the end, or before anything that is not a number)
    becomes `--trending 10` before Typer parses; `--trending 5` and `--trending=5` are left as they are."""
    args = list(argv)
    command = next((i for i, arg in enumerate(args) if not arg.startswith("-")), None)
    if command is None or args[command] != "subscribe":
        return args
    i = command + 1
    while i < len(args) and args[i] != "--":
        if args[i] in _VALUE_OPTIONS:
            i += 1  # skip its value: `-t --trending` is a topic
        elif args[i] == TRENDING_OPTION and not (i + 1 < len(args) and _NUMBER.fullmatch(args[i + 1])):
            args.insert(i + 1, str(TRENDING_DEFAULT))
        i += 1
    return args


def existing_subscriber(session: Session, email: str) -> Subscriber:
    """The subscriber with this address, or a one-line error."""
    try:
        sub = by_email(session, normalize_email(email))
    except SubscriberError as exc:
        fail(str(exc))
    if sub is None:
        fail(f"no subscriber with address {email.strip()!r}")
    return sub


@app.command()
def unsubscribe(email: str) -> None:
    """Unsubscribe an address."""
    settings = load_settings()
    with session_for(settings) as session:
        sub = existing_subscriber(session, email)
        changed = unsubscribe_sub(session, sub, utcnow())
    out.print(f"{sub.email} {'is now unsubscribed' if changed else 'was already unsubscribed'}")


def subscriber_json(sub: Subscriber) -> dict[str, object]:
    """The JSON shape of a subscriber for `subscribers --json`."""
    return {
        "email": sub.email,
        "status": sub.status.value,
        "topics": sub.topics,
        "frequency": sub.frequency.value,
        "send_hour": sub.send_hour,
        "timezone": sub.timezone,
        "min_upvotes": sub.min_upvotes,
        "max_papers": sub.max_papers,
        "trending": sub.trending,
    }


@app.command()
def subscribers(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """List subscribers."""
    settings = load_settings()
    with session_for(settings) as session:
        rows = list(session.exec(select(Subscriber).order_by(col(Subscriber.id))))
    if as_json:
        sys.stdout.write(json.dumps([subscriber_json(s) for s in rows], ensure_ascii=False, indent=2) + "\n")
        return
    table = Table("email", "status", "schedule", "topics", "trending")
    for s in rows:
        table.add_row(
            s.email,
            s.status.value,
            f"{s.frequency.value} {s.send_hour:02d}:00 {s.timezone}",
            "; ".join(s.topics),
            f"top {s.trending}" if s.trending else "",
        )
    out.print(table)


def print_send_report(report: SendReport, dry_run: bool) -> None:
    """The per-reader table and the counts of a send run."""
    table = Table("subscriber", "period", "papers", "status", "subject" if dry_run else "file")
    for line in report.lines:
        table.add_row(
            line.email,
            line.period,
            str(line.papers),
            line.status,
            line.subject if dry_run else line.file,
        )
    if report.lines:
        out.print(table)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts.items())) or "nothing was due"
    out.print(counts)


@app.command()
def send(
    now: Annotated[str | None, typer.Option(help="Pretend it is this time (ISO 8601).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be sent; record nothing.")] = False,
) -> None:
    """Send every digest that is due now (the same path the Celery tasks run)."""
    settings = load_settings()
    warn_if_links_in_clear(settings)
    when = parse_now(now)
    with session_for(settings) as session:
        embed_inline(session, settings)
        total = session.exec(select(func.count()).select_from(Subscriber)).one()
        with Progress(console=err, transient=True) as progress:
            task = progress.add_task("sending", total=total)
            report = run_send(
                session, settings, make_transport(settings), when, dry_run=dry_run,
                clock=None if now else utcnow, progress=lambda n: progress.advance(task, n),
            )  # fmt: skip
    print_send_report(report, dry_run)
    if report.counts.get("failed") or report.counts.get("unknown"):
        raise typer.Exit(2)


@app.command()
def preview(
    email: str,
    out_file: Annotated[Path | None, typer.Option("--out", help="Write the HTML here.")] = None,
    now: Annotated[str | None, typer.Option(help="Pretend it is this time (ISO 8601).")] = None,
) -> None:
    """Show the digest a subscriber would get right now (the text, or the HTML into --out)."""
    settings = load_settings()
    with session_for(settings) as session:
        sub = existing_subscriber(session, email)
        embed_inline(session, settings)
        rendered = preview_digest(session, settings, sub, parse_now(now))
    if rendered is None:
        out.print(f"nothing new matches {sub.email}'s topics yet: no email would be sent")
        return
    if out_file is not None:
        try:
            out_file.write_text(rendered.html, encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {out_file}: {exc.strerror or exc}")
        out.print(f"{rendered.subject}\nwrote {out_file}")
        return
    sys.stdout.write(f"Subject: {rendered.subject}\n\n{rendered.text}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default 8000; with --demo, the demo links' port).")
    ] = None,
    proxy_headers: Annotated[bool, typer.Option(help="Trust X-Forwarded-For from a reverse proxy.")] = False,
    demo: Annotated[
        bool, typer.Option("--demo", help="Serve what `digest demo` made here, so every link in its digests works.")
    ] = False,
) -> None:
    """Run the web app: sign-up, confirmation, manage and unsubscribe pages, and the JSON API."""
    import uvicorn

    from digest.web.app import create_app

    if demo and not demo_module.DEMO_DATABASE.exists():
        fail(f"no demo data here ({demo_module.DEMO_DATABASE}): run `digest demo` first")
    settings = load_settings(demo=demo)
    logs.configure(settings.log_level, settings.log_json)
    warn_if_links_in_clear(settings)
    if port is None:
        port = demo_module.port_of(settings.base_url) if demo else 8000
    app = create_app(settings)
    uvicorn.run(app, host=host, port=port, proxy_headers=proxy_headers, log_config=None, log_level="info")


@app.command()
def cleanup(now: Annotated[str | None, typer.Option(help="Pretend it is this time (ISO 8601).")] = None) -> None:
    """Forget sign-ups that were never confirmed (after DIGEST_PENDING_RETENTION_DAYS) and remove
    digests older than DIGEST_ARCHIVE_DAYS from the archive (what the daily task does)."""
    settings = load_settings()
    when = parse_now(now)
    with session_for(settings) as session:
        dropped = cleanup_pending(session, when, timedelta(days=settings.pending_retention_days))
        removed = remove_old(session, when, timedelta(days=settings.archive_days))
    out.print(f"{dropped} unconfirmed sign-ups forgotten, {removed} archived digests removed")


@app.command()
def status(now: Annotated[str | None, typer.Option(help="Pretend it is this time (ISO 8601).")] = None) -> None:
    """Sources' health and the last 24 hours of deliveries, for operators."""
    settings = load_settings()
    when = parse_now(now)
    with session_for(settings) as session:
        report = health.status(session, settings, when)
    table = Table("source", "last success", "consecutive failures", "last error")
    for src in report.sources:
        name = f"[bold red]{src.name} (failing)[/]" if src.flagged else src.name
        last = f"{src.last_success:%Y-%m-%d %H:%M} UTC" if src.last_success else "never"
        table.add_row(name, last, str(src.consecutive_failures), src.last_error or "")
    out.print(table)
    shown = ("sent", "pending", "claimed", "sending", "retry", "failed", "unknown", "empty", "skipped")
    out.print("digests, last 24 h: " + ", ".join(f"{k}: {report.deliveries.get(k, 0)}" for k in shown))
    out.print("sign-up emails, last 24 h: " + ", ".join(f"{k}: {v}" for k, v in sorted(report.notices.items())))
    out.print(f"suppressed addresses: {report.suppressed} ({report.suppressed_recently} in the last 24 h)")
    if any(s.flagged for s in report.sources):
        raise typer.Exit(3)


@app.command()
def forget(email: str) -> None:
    """Delete a subscriber and all their history; keep only a hash so they are never mailed again."""
    settings = load_settings()
    with session_for(settings) as session:
        sub = existing_subscriber(session, email)
        address = sub.email
        suppression.forget(session, sub, utcnow())
    out.print(f"{address} is forgotten: every row about it is deleted, and it will not be mailed again")


@app.command()
def unsuppress(email: str) -> None:
    """Take an address off the suppression list (it may then subscribe again)."""
    settings = load_settings()
    try:
        address = normalize_email(email)
    except SubscriberError as exc:
        fail(str(exc))
    with session_for(settings) as session:
        removed = suppression.unsuppress(session, address)
    if not removed:
        fail(f"{address} is not on the suppression list")
    out.print(f"{address} is no longer suppressed")


@app.command()
def embed() -> None:
    """Embed every paper not yet embedded by the configured model (DIGEST_EMBEDDING_MODEL)."""
    settings = load_settings()
    if settings.embedding_model == "none":
        out.print("embedding is off (DIGEST_EMBEDDING_MODEL=none): nothing embedded")
        return
    with session_for(settings) as session:
        embedded = embed_with_progress(session, settings)
        left = missing(session, settings.embedding_model)
    waiting = f"; {left} still waiting (being embedded elsewhere)" if left else ""
    out.print(f"{embedded} papers embedded ({settings.embedding_model}){waiting}")


@app.command()
def demo() -> None:
    """Run the whole pipeline on the bundled sample papers: no network, no Redis, no SMTP."""
    settings = load_settings(demo=True)
    report = demo_module.run(settings)
    table = Table("subscriber", "topics", "papers", "file")
    for line in report.lines:
        table.add_row(line.email, line.subject, str(line.papers), f"{settings.outbox_dir / line.file}.html")
    out.print(table)
    counts = ", ".join(f"{k}: {v}" for k, v in sorted(report.counts.items()))
    out.print(f"{counts}. Open the .html files (or the .eml files in a mail client) to see the digests.")
    out.print(
        f"To follow their links (manage, unsubscribe, more or less like this), serve the demo's data with "
        f"`{invoked_as()} serve --demo` and keep it running; the links open on {settings.base_url}.",
        highlight=False,
    )


def invoked_as() -> str:
    """How to type this command again from here: `digest` when that is the one on the PATH (or it
    was run some other way, as `python -m digest`), else the path it was run by (`.venv/bin/digest`
    after `make demo`)."""
    script = Path(sys.argv[0])
    on_path = shutil.which("digest")
    if script.name != "digest" or (on_path and Path(on_path).resolve() == script.resolve()):
        return "digest"
    return str(script)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `digest` script."""
    app(args=with_trending_values(sys.argv[1:] if argv is None else argv))
