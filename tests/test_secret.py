"""The secret key: a weak one is refused outside local use by every entry point, as a real process
would meet it; local use with SQLite gets a random key made once and kept beside the database."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from bench import celery_process
from bench.celery_process import child_environment
from digest.config import Settings, url_is_local
from digest.secret import PLACEHOLDERS, SecretError, ensure_secret, key_file, weakness

STRONG = "s" * 40
PUBLIC = "https://digest.example.org"


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://localhost:8000", True),
        ("http://127.0.0.1:8000", True),
        ("http://[::1]:8000", True),
        ("http://app.localhost", True),
        ("https://digest.example.org", False),
        ("http://10.0.0.5:8000", False),  # a private network is still other people's machines
        ("http://192.168.1.10", False),
    ],
)
def test_what_counts_as_local(url: str, local: bool) -> None:
    assert url_is_local(url) is local


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("dev-insecure-change-me", "is a public placeholder"),
        ("change-me-to-a-long-random-string", "is a public placeholder"),
        ("", "is not set"),
        ("x" * 31, "is shorter than 32 bytes"),
        ("é" * 16, None),  # 32 bytes of UTF-8
        (STRONG, None),
    ],
)
def test_weak_keys(key: str, problem: str | None) -> None:
    assert weakness(key) == problem


@pytest.mark.parametrize("key", sorted(PLACEHOLDERS | {"short"}))
def test_a_weak_key_is_refused_when_links_leave_this_machine(key: str, tmp_path: Path) -> None:
    settings = Settings(_env_file=None, secret_key=key, base_url=PUBLIC, database_url=f"sqlite:///{tmp_path}/d.db")
    with pytest.raises(SecretError, match=r"DIGEST_SECRET_KEY .* not local; make one with: python -c"):
        ensure_secret(settings)
    assert not (tmp_path / "d.db.secret-key").exists()


def test_local_use_makes_one_key_and_keeps_it_beside_the_database(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp_path}/digest.sqlite3")
    first = ensure_secret(settings)
    path = key_file(settings)
    assert path == tmp_path / "digest.sqlite3.secret-key"
    assert weakness(first.secret_key) is None and first.secret_key != settings.secret_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_secret(settings).secret_key == first.secret_key  # the same key for every process
    # A strong key of the operator's own is used as it is, and nothing is written.
    other = Settings(_env_file=None, secret_key=STRONG, database_url=f"sqlite:///{tmp_path}/other.sqlite3")
    assert ensure_secret(other).secret_key == STRONG and not (tmp_path / "other.sqlite3.secret-key").exists()


def test_local_use_without_sqlite_still_needs_a_key() -> None:
    settings = Settings(_env_file=None, database_url="postgresql+psycopg://u@127.0.0.1/db")
    with pytest.raises(SecretError, match="every process sharing this database needs the same key"):
        ensure_secret(settings)


def _env(tmp_path: Path, **values: str) -> dict[str, str]:
    return child_environment(DIGEST_DATABASE_URL=f"sqlite:///{tmp_path}/digest.sqlite3", DIGEST_SOURCES="[]", **values)


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["send"], ["init-db"]])
def test_the_cli_refuses_to_start_with_a_public_placeholder(tmp_path: Path, command: list[str]) -> None:
    env = _env(tmp_path, DIGEST_BASE_URL=PUBLIC, DIGEST_SECRET_KEY="dev-insecure-change-me")
    done = subprocess.run(
        [sys.executable, "-m", "digest", *command], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: DIGEST_SECRET_KEY is a public placeholder"), done.stderr
    assert "secrets.token_urlsafe(48)" in lines[0]


def test_a_local_cli_run_needs_nothing_and_keeps_its_key(tmp_path: Path) -> None:
    env = _env(tmp_path)  # no key, the default base URL (localhost)
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-m", "digest", "init-db"], env=env, cwd=tmp_path, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert len((tmp_path / "digest.sqlite3.secret-key").read_text().strip()) >= 48


@pytest.mark.parametrize("role", ["worker", "beat"])
def test_a_worker_or_beat_refuses_a_short_key_in_one_line(tmp_path: Path, role: str) -> None:
    settings = Settings(
        _env_file=None, database_url=f"sqlite:///{tmp_path}/digest.sqlite3", sources=[], base_url=PUBLIC,
        secret_key="short", broker_url="redis://127.0.0.1:6379/11", celery_queue="nothing",
    )  # fmt: skip
    process = (celery_process.worker if role == "worker" else celery_process.beat)(settings, role, tmp_path).start()
    assert process.popen is not None and process.popen.wait(timeout=120) == 1
    output = process.text()
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: DIGEST_SECRET_KEY is shorter than 32 bytes, and DIGEST_BASE_URL https://digest.example.org is not "
        'local; make one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'
    ]
    assert "Traceback" not in output
