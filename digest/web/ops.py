"""What operators and tools call: liveness, readiness, Prometheus metrics, and the API docs page."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable

import redis
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from digest.web.deps import Web, WebDep
from digest.web.security import DOCS_CSP

router = APIRouter(include_in_schema=False)
OPENAPI_URL = "/api/openapi.json"


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(web: WebDep) -> JSONResponse:
    """Whether the database (and the broker, if there is one) answer: 503 if not."""
    return _readiness(web)


@router.get("/metrics")
def metrics(web: WebDep) -> Response:
    """Prometheus metrics, read from the database."""
    return Response(generate_latest(web.metrics), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/docs")
def docs(request: Request) -> HTMLResponse:
    """Swagger UI, with a CSP that allows its CDN files and exactly its one inline script."""
    page = get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} — docs")
    html = bytes(page.body).decode()
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP.format(script=hashes)})


def _readiness(web: Web) -> JSONResponse:
    checks = {"database": _check(lambda: _ping_db(web.engine))}
    if web.settings.broker_url:
        checks["broker"] = _check(lambda: _ping_redis(web.settings.broker_url or ""))
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", **checks}, status_code=200 if ok else 503)


def _check(probe: Callable[[], None]) -> str:
    try:
        probe()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def _ping_db(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _ping_redis(url: str) -> None:
    redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
