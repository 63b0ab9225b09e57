"""Logging: one line per event, JSON when DIGEST_LOG_JSON=1, each carrying the run it belongs to;
full email addresses never reach the logs below WARNING, and link tokens never reach them at all
(an access-log line with a manage link in it would be a key to that reader's subscription)."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime

RUN_ID: contextvars.ContextVar[str] = contextvars.ContextVar("run_id", default="-")
# The path segment after /confirm/, /manage/, /unsubscribe/, /feedback/, /view/, /feed/ (pages and
# /api/) is a signed token.
_TOKEN_PATH = re.compile(r"(/(?:confirm|manage|unsubscribe|feedback|view|feed)/)[^/\s?#\"']+")
_EMAIL = re.compile(r"([A-Za-z0-9._%+\-])[A-Za-z0-9._%+\-]*@([A-Za-z0-9.\-]+\.[A-Za-z]{2,})")


def new_run(kind: str, run_id: str | None = None) -> str:
    """Start a run (a CLI command, a task, a request): every log line after this carries its id."""
    value = run_id or f"{kind}-{uuid.uuid4().hex[:10]}"
    RUN_ID.set(value)
    return value


def mask(text: str) -> str:
    """`ada@example.org` → `a…@example.org`."""
    return _EMAIL.sub(r"\1…@\2", text)


def redact_tokens(text: str) -> str:
    """`GET /manage/eyJz…` → `GET /manage/[token]`."""
    return _TOKEN_PATH.sub(r"\1[token]", text)


class RunAndPrivacy(logging.Filter):
    """Adds `run_id` to every record; takes link tokens out of every record and masks addresses in
    records below WARNING."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = RUN_ID.get()
        message = record.getMessage()
        cleaned = redact_tokens(message)
        if record.levelno < logging.WARNING:
            cleaned = mask(cleaned)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": getattr(record, "run_id", "-"),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(run_id)s] %(message)s"


def configure(level: int | str = logging.INFO, json_lines: bool = False, stream: object = None) -> None:
    """Install our handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_digest", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)  # type: ignore[arg-type]
    handler._digest = True  # type: ignore[attr-defined]
    handler.addFilter(RunAndPrivacy())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(level)
