"""Shared fixtures: a fresh database per test, fixed clocks, and real-service guards."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from digest.config import Settings
from digest.db import init_db, make_engine, open_session

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = Path(__file__).resolve().parent / "golden"
# A Monday morning: weekday, daily and weekly (Monday) readers are all due at 08:00 UTC.
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--regen-golden", action="store_true", help="Rewrite tests/golden/ from the current output.")


@pytest.fixture
def regen_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--regen-golden")) or os.environ.get("REGEN_GOLDEN") == "1"


def require(service: str, available: bool) -> None:
    """Skip when a real service is missing on a laptop; fail in CI, where it must be there."""
    if available:
        return
    message = f"{service} is not reachable"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: integration tests must not skip)")
    pytest.skip(message)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections there."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A loopback port nobody is listening on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


TEST_DATABASE_URL = os.environ.get("DIGEST_TEST_DATABASE_URL")
FreshDatabase = Callable[[str], str]


def _with_schema(url: str, schema: str) -> str:
    return make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture
def fresh_database(tmp_path: Path) -> Iterator[FreshDatabase]:
    """Make empty databases for one test: SQLite files, or — with DIGEST_TEST_DATABASE_URL set — new
    PostgreSQL schemas (dropped afterwards), so the whole suite runs on either."""
    schemas: list[str] = []

    def make(name: str = "digest") -> str:
        if not TEST_DATABASE_URL:
            return f"sqlite:///{tmp_path / f'{name}.sqlite3'}"
        schema = f"t_{uuid.uuid4().hex[:16]}"
        admin = create_engine(TEST_DATABASE_URL)
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                conn.commit()
        except OperationalError as exc:
            require(f"PostgreSQL at {TEST_DATABASE_URL} ({exc.orig})", False)
        finally:
            admin.dispose()
        schemas.append(schema)
        return _with_schema(TEST_DATABASE_URL, schema)

    yield make
    if schemas and TEST_DATABASE_URL:
        admin = create_engine(TEST_DATABASE_URL)
        with admin.connect() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.commit()
        admin.dispose()


@pytest.fixture
def settings(tmp_path: Path, fresh_database: FreshDatabase) -> Settings:
    """Settings for one test: its own database and outbox, no sources, fixed secrets."""
    return Settings(
        _env_file=None,
        database_url=fresh_database("digest"),
        outbox_dir=tmp_path / "outbox",
        secret_key="test-secret-key",
        base_url="https://digest.example.org",
        from_address="Paper Digest <digest@example.org>",
        smtp_url=None,
        broker_url=None,
        sources=[],
        arxiv_min_interval=0.0,
        # Nothing listens here: a test that fetches Hugging Face papers never asks the real arXiv API.
        arxiv_api_url="http://127.0.0.1:9/api/query",
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url)
    init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with open_session(engine) as session:
        yield session
