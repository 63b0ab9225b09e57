"""The secret key that signs every link, CSRF field and Message-ID.

Outside local use a weak key lets anyone forge manage, unsubscribe and confirm links, so every
entry point (the CLI, `digest serve`, the workers, beat) takes its key through `ensure_secret`:
refused when it is missing, a known placeholder or under 32 bytes and DIGEST_BASE_URL is not local;
for local use with the embedded SQLite database a random key is made once and kept beside it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import make_url

from digest.config import Settings, url_is_local

MIN_BYTES = 32
# Keys that are public: this project's old default and the placeholder of .env.example.
PLACEHOLDERS = frozenset({"", "dev-insecure-change-me", "change-me-to-a-long-random-string", "change-me", "secret"})
HOW = 'make one with: python -c "import secrets; print(secrets.token_urlsafe(48))"'


class SecretError(ValueError):
    """The configured key cannot be used here; the message says why and how to make one."""


def weakness(key: str | None) -> str | None:
    """Why a key is not good enough for a service on the internet, or None."""
    if key is None or key.strip() in PLACEHOLDERS:
        return "is not set" if not key else "is a public placeholder"
    if len(key.encode()) < MIN_BYTES:
        return f"is shorter than {MIN_BYTES} bytes"
    return None


def key_file(settings: Settings) -> Path | None:
    """Where the local key is kept: beside the SQLite database file (None for other databases)."""
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    database = Path(url.database)
    return database.with_name(database.name + ".secret-key")


def _kept_key(path: Path) -> str:
    """The key in `path`, made (random, readable by this user only) if there is none yet."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    return path.read_text(encoding="ascii").strip()


def ensure_secret(settings: Settings) -> Settings:
    """The settings with a key fit for where they point: theirs if strong, the kept local key for
    local use without one, else SecretError (one line saying why and how to make one)."""
    problem = weakness(settings.secret_key)
    if problem is None:
        return settings
    if not url_is_local(settings.base_url):
        raise SecretError(f"DIGEST_SECRET_KEY {problem}, and DIGEST_BASE_URL {settings.base_url} is not local; {HOW}")
    if settings.secret_key and settings.secret_key.strip() not in PLACEHOLDERS:
        return settings  # a short key of the operator's own, for local use only
    path = key_file(settings)
    if path is None:
        raise SecretError(f"DIGEST_SECRET_KEY {problem}: every process sharing this database needs the same key; {HOW}")
    try:
        key = _kept_key(path)
    except OSError as exc:
        raise SecretError(f"cannot keep a local secret key in {path}: {exc.strerror or exc}; {HOW}") from exc
    return settings.model_copy(update={"secret_key": key})
