"""The benchmark's own database: a fresh SQLite file, or a dedicated schema in PostgreSQL."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import OperationalError

from digest.db import init_db, make_engine

PG_SCHEMA = "paper_digest_bench"
# Another schema may be named (the test suite's quick run has its own, so it never replaces a day
# someone is measuring in the default one), but only one of this family: it is dropped first.
_SCHEMA_NAME = re.compile(rf"{PG_SCHEMA}(_[a-z0-9]{{1,30}})?")


class BenchDatabaseError(RuntimeError):
    """The database URL cannot be used safely by the benchmark."""


def prepare(url: str | None, workdir: Path, schema: str = PG_SCHEMA) -> str:
    """A URL for an empty bench database with every table created.

    - no URL: a fresh SQLite file under `workdir`;
    - a SQLite URL: that file, which must not exist yet (or be under bench/results/, then it is replaced);
    - a PostgreSQL URL: the schema `paper_digest_bench` (or `schema`, `paper_digest_bench_<suffix>`) is
      dropped and created again, and the URL returned pins `search_path` to it, so nothing outside
      that schema is ever touched.
    """
    if url is None:
        workdir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{(workdir / 'bench.sqlite3').resolve()}"
        _remove_sqlite(Path(make_url(url).database or ""))
    elif url.startswith("sqlite"):
        path = Path(make_url(url).database or "").resolve()
        results = Path(__file__).resolve().parent / "results"
        if path.exists() and results not in path.parents:
            raise BenchDatabaseError(f"{path} exists; give a new SQLite file (the benchmark fills it)")
        _remove_sqlite(path)
        url = f"sqlite:///{path}"
    elif url.startswith("postgresql"):
        url = _pg_schema(url, schema)
    else:
        raise BenchDatabaseError(f"unsupported database URL {url!r} (SQLite or PostgreSQL)")
    engine = make_engine(url)
    try:
        init_db(engine)
    finally:
        engine.dispose()
    return url


def _remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def check_schema(schema: str) -> None:
    """Refuse, in one line, a schema name that is not of the bench's own family (it is dropped)."""
    if not _SCHEMA_NAME.fullmatch(schema):
        raise BenchDatabaseError(
            f"the bench schema must be {PG_SCHEMA} or {PG_SCHEMA}_<lowercase letters and digits>, not {schema!r}: "
            "it is dropped and created again"
        )


def _pg_schema(url: str, schema: str) -> str:
    check_schema(schema)
    parsed = make_url(url)
    if "options" in parsed.query:
        raise BenchDatabaseError("give the PostgreSQL URL without `options`: the bench sets search_path itself")
    admin = create_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    finally:
        admin.dispose()
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


def kind(url: str | None) -> str:
    """`postgresql` or `sqlite` (None is a fresh SQLite file): how a run is labelled."""
    return "sqlite" if url is None else make_url(url).get_backend_name()


def check_reachable(url: str | None) -> None:
    """Fail at once, in one line, when a PostgreSQL server does not answer (before any run starts)."""
    if url is None or not url.startswith("postgresql"):
        return
    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise BenchDatabaseError(
            f"PostgreSQL at {describe(url)} does not answer ({reason}); start it, give another with --database, "
            "or run on SQLite alone: --database sqlite"
        ) from None
    finally:
        engine.dispose()


def engine_for(url: str) -> Engine:
    """The project's own engine for this URL (same pragmas and pool as the workers use)."""
    return make_engine(url)


def describe(url: str) -> str:
    """The URL without a password, for the report."""
    return make_url(url).render_as_string(hide_password=True)
