"""The one typed Settings object, read at the edges and passed down."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from digest.dkim import DkimKey, load_key
from digest.retry import RetryPolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Where Celery looks for its broker when DIGEST_BROKER_URL is not set (a Redis on this machine).
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"
USER_AGENT = "paper-digest/0.1 (+https://github.com/paper-digest/paper-digest; daily research digest)"


class SourceKind(StrEnum):
    """The feed formats the parser understands."""

    ARXIV_RSS = "arxiv-rss"
    ARXIV_ATOM = "arxiv-atom"
    HF_JSON = "hf-json"
    RSS = "rss"


class SourceConfig(BaseModel):
    """One operator-configured source. `{date}` in the URL is filled with the day to fetch."""

    name: str
    kind: SourceKind
    url: str
    # For dated URLs (Hugging Face Daily Papers): also fetch this many earlier days,
    # so late additions and upvote changes are picked up.
    days_back: int = 1


DEFAULT_SOURCES = [
    SourceConfig(
        name="arxiv-ai-cl-lg-cv",
        kind=SourceKind.ARXIV_RSS,
        url="https://rss.arxiv.org/rss/cs.AI+cs.CL+cs.LG+cs.CV",
    ),
    SourceConfig(
        name="hf-daily-papers",
        kind=SourceKind.HF_JSON,
        url="https://huggingface.co/api/daily_papers?date={date}",
        days_back=3,  # upvotes keep climbing for days: re-read them on every run
    ),
]


class SmtpConfig(BaseModel):
    """Where and how to deliver over SMTP, parsed from DIGEST_SMTP_URL."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    starttls: bool = False


def url_is_local(url: str, *, private: bool = False) -> bool:
    """Whether a URL names this machine (`localhost`, a loopback address) — or, with `private`, also
    a private or link-local network. A name other than localhost is not looked up."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return not address.is_global if private else address.is_loopback


def links_in_clear(base_url: str) -> str | None:
    """Why links built on DIGEST_BASE_URL would cross a network unencrypted — it is not https and
    names another machine — as the warning an operator should read at start, or None."""
    if urlsplit(base_url).scheme.lower() == "https" or url_is_local(base_url):
        return None
    return (
        f"DIGEST_BASE_URL {base_url} is not https: every manage, unsubscribe and feedback link in the "
        "emails, and the pages they open, would travel in the clear; set it to the public https:// address"
    )


def parse_smtp_url(url: str, *, starttls: bool | None = None) -> SmtpConfig:
    """Parse `smtp://user:pass@host:port` (or `smtps://` for implicit TLS)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError(f"DIGEST_SMTP_URL must look like smtp://user:pass@host:port, got {url!r}")
    implicit = parts.scheme == "smtps"
    port = parts.port or (465 if implicit else 25)
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        implicit_tls=implicit,
        starttls=(port == 587) if starttls is None else starttls,
    )


class Settings(BaseSettings):
    """All configuration. Every field can be set as DIGEST_<NAME> in the environment or `.env`."""

    model_config = SettingsConfigDict(env_prefix="DIGEST_", env_file=".env", extra="ignore", populate_by_name=True)

    database_url: str = "sqlite:///digest.sqlite3"
    broker_url: str | None = None
    celery_queue: str = "digest"
    beat_every_seconds: float | None = Field(default=None, gt=0)  # override the beat schedule (tests)
    smtp_url: str | None = None
    smtp_starttls: bool | None = None  # None: STARTTLS on port 587, off elsewhere
    smtp_timeout: float = 30.0
    smtp_connections: int = Field(default=4, ge=1, le=64)
    outbox_dir: Path = Path("outbox")
    from_address: str = Field(
        default="Paper Digest <digest@localhost>",
        validation_alias="DIGEST_FROM",
    )
    base_url: str = "http://localhost:8000"
    # Refused outside local use unless strong (digest/secret.py); for local use with SQLite, a random
    # key is made once and kept beside the database when none is set.
    secret_key: str = "dev-insecure-change-me"
    # Previous keys, still accepted when verifying links already sent (rotate without breaking them).
    old_secret_keys: list[str] = Field(default_factory=list)
    list_name: str = "Paper Digest"
    log_json: bool = False  # DIGEST_LOG_JSON=1: one JSON object per log line
    # /metrics is served only to `Authorization: Bearer <this token>`; unset, it answers 404.
    metrics_token: str | None = None
    log_level: str = "INFO"

    sources: list[SourceConfig] = Field(default_factory=lambda: list(DEFAULT_SOURCES))
    fetch_timeout: float = 30.0
    fetch_max_bytes: int = 50 * 1024 * 1024
    arxiv_min_interval: float = 3.0
    # Papers Hugging Face announced get their categories and full author list from here: one
    # batched `id_list` query per fetch run, paced like every arXiv request (`digest.enrich`).
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    arxiv_enrich_batch: int = Field(default=100, ge=1, le=500)
    # A paper becomes eligible for a reader's minimum upvotes the first time it meets it within
    # this many days of being first seen (its count is re-read on every fetch).
    upvote_lookback_days: int = Field(default=7, ge=1, le=60)
    # Each paper's title and abstract embedded once by this model (`digest.embed`); "none": never.
    embedding_model: Literal["minilm-int8", "none"] = "minilm-int8"

    confirm_link_hours: int = Field(default=72, ge=1)
    manage_link_days: int = Field(default=90, ge=1)  # every digest and notice carries a fresh one
    confirm_cooldown_hours: int = Field(default=24, ge=0)
    pending_retention_days: int = Field(default=7, ge=1)
    # Past digests (their pages, the archive, the feed) are kept this long, then the daily clean-up removes them.
    archive_days: int = Field(default=90, ge=1)
    signup_rate_limit: int = Field(default=10, ge=1)  # sign-up requests per IP per rate window
    link_rate_limit: int = Field(default=60, ge=1)  # requests carrying a link token, per IP per rate window
    # Personal feed requests per IP per rate window: feed readers poll, often many readers from one address.
    feed_rate_limit: int = Field(default=600, ge=1)
    rate_window_seconds: int = Field(default=3600, ge=1)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)

    send_batch_size: int = Field(default=200, ge=1)
    # Digests stop this long before their send time: a fetch still committing cannot slip between two.
    window_lag_seconds: int = Field(default=600, ge=0)
    # A row still `sending` after this long lost its worker (must exceed the task time limit).
    stale_sending_seconds: int = Field(default=45 * 60, ge=1)
    retry_base_seconds: float = Field(default=120.0, gt=0)  # first back-off ceiling; doubles each attempt
    retry_max_attempts: int = Field(default=5, ge=1)
    smtp_rate_per_second: float | None = Field(default=None, gt=0)  # across all workers (via Redis)
    source_alert_failures: int = Field(default=3, ge=1)  # flag a source failing this many runs in a row
    templates_dir: Path = PROJECT_ROOT / "email_templates"

    # DKIM: every email is signed when all three are set. Publish the TXT record
    # <selector>._domainkey.<domain> = "v=DKIM1; k=rsa; p=<base64 public key>".
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_key_path: Path | None = None
    _dkim_key: DkimKey | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _load_dkim_key(self) -> Settings:
        """Load the key once, at start-up: a bad key is a configuration error, not a failed send."""
        parts = (self.dkim_domain, self.dkim_selector, self.dkim_key_path)
        if all(p is None for p in parts):
            return self
        if any(p is None for p in parts):
            raise ValueError("set DIGEST_DKIM_DOMAIN, DIGEST_DKIM_SELECTOR and DIGEST_DKIM_KEY_PATH together")
        assert self.dkim_domain and self.dkim_selector and self.dkim_key_path
        key = load_key(self.dkim_domain, self.dkim_selector, self.dkim_key_path)
        sender = parseaddr(self.from_address)[1].rpartition("@")[2].lower()
        if sender != key.domain and not sender.endswith("." + key.domain):
            raise ValueError(f"DIGEST_FROM's domain {sender!r} is not {key.domain!r}: DMARC alignment would fail")
        self._dkim_key = key
        return self

    @property
    def dkim_key(self) -> DkimKey | None:
        """The loaded DKIM key, or None when signing is off."""
        return self._dkim_key

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def signing_keys(self) -> list[str]:
        """Keys for itsdangerous: the last one signs, all of them verify."""
        return [*self.old_secret_keys, self.secret_key]

    @property
    def retry_policy(self) -> RetryPolicy:
        """How temporary SMTP failures are retried."""
        return RetryPolicy(base=timedelta(seconds=self.retry_base_seconds), max_attempts=self.retry_max_attempts)

    @property
    def celery_broker(self) -> str:
        """The broker Celery connects to: DIGEST_BROKER_URL, or a Redis on this machine."""
        return self.broker_url or DEFAULT_BROKER_URL

    @property
    def smtp(self) -> SmtpConfig | None:
        """The parsed SMTP relay, or None to write emails to the outbox folder."""
        if not self.smtp_url:
            return None
        return parse_smtp_url(self.smtp_url, starttls=self.smtp_starttls)
