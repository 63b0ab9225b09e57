"""Engine and schema: SQLite by default, PostgreSQL in production."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, create_engine

from digest import models  # noqa: F401  (registers the tables)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web app read while a worker writes; the timeout rides out short write locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # WAL + NORMAL: durable against a crashed process, and one fsync per checkpoint, not per commit.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    """Create the engine for a database URL, with the settings each backend needs."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Every network call has a timeout: connecting included.
    return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
_LOCK_ID = 7_251_994  # the PostgreSQL advisory lock that serialises concurrent upgrades


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration, pointed at our migrations and at an open connection."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def init_db(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to `revision` with Alembic (safe to run twice, and from many processes
    at once: on PostgreSQL an advisory lock lets one upgrade while the others wait)."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _LOCK_ID})
        try:
            command.upgrade(alembic_config(connection), revision)
            connection.commit()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _LOCK_ID})
                connection.commit()


def current_revision(engine: Engine) -> str | None:
    """The schema's Alembic revision, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def open_session(engine: Engine) -> Session:
    """A session whose loaded objects stay readable after commit (we commit often, mid-batch)."""
    return Session(engine, expire_on_commit=False)


def upsert_insert(dialect: str, table: Any) -> Any:
    """INSERT into `table` in this dialect's own form (PostgreSQL or SQLite), the one that has
    ON CONFLICT DO NOTHING / DO UPDATE."""
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table)
