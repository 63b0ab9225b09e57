"""Shared fixtures: a fresh database per test, fixed clocks, and real-service guards."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
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


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings for one test: its own SQLite file and outbox, no sources, fixed secrets."""
    return Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'digest.sqlite3'}",
        outbox_dir=tmp_path / "outbox",
        secret_key="test-secret-key",
        base_url="https://digest.example.org",
        from_address="Paper Digest <digest@example.org>",
        smtp_url=None,
        broker_url=None,
        sources=[],
        arxiv_min_interval=0.0,
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
