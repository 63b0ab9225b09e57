"""What operators and tools call: liveness, readiness, Prometheus metrics, and the API docs page."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path

import fastapi_offline
import redis
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from digest.web.deps import Web, WebDep

router = APIRouter(include_in_schema=False)
OPENAPI_URL = "/api/openapi.json"
# Swagger UI for the docs page, served from this app (no CDN): the files the pinned fastapi-offline
# package ships (1.7.7: Swagger UI 5.32.6), each loaded with Subresource Integrity. The hashes are
# pinned here, not computed at run time: a different file on disk is refused by the browser (and
# tests/test_web_ops.py says which hash to update after an intended upgrade).
SWAGGER_UI_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
SWAGGER_UI_URL = "/static/swagger-ui"
SWAGGER_UI_FILES = {
    "swagger-ui-bundle.js": "sha384-EYdOaiRwn44zNjrw+Tfs06qYz9BGQVo2f4/pLY5i7VorbjnZNhdplAbTBk8FXHUJ",
    "swagger-ui.css": "sha384-9Q2fpS+xeS4ffJy6CagnwoUl+4ldAYhOs9pgZuEKxypVModhmZFzeMlvVsAjf7uT",
}


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(web: WebDep) -> JSONResponse:
    """Whether the database (and the broker, if there is one) answer: 503 if not."""
    return _readiness(web)


@router.get("/metrics")
def metrics(request: Request, web: WebDep) -> Response:
    """Prometheus metrics, read from the database: only for `Authorization: Bearer <metrics_token>`.
    Without a configured token there are none on this (public) app: 404, like any unknown path."""
    token = web.settings.metrics_token
    if not token:
        raise HTTPException(status_code=404, detail="Not Found")
    if not bearer_ok(request.headers.get("authorization"), token):
        raise HTTPException(status_code=401, detail="Unauthorized", headers={"WWW-Authenticate": "Bearer"})
    return Response(generate_latest(web.metrics), media_type=CONTENT_TYPE_LATEST)


def bearer_ok(header: str | None, token: str) -> bool:
    """Whether an Authorization header carries this bearer token (compared in constant time)."""
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


@router.get("/api/docs")
def docs(request: Request, web: WebDep) -> HTMLResponse:
    """Swagger UI from this app's own files (with their integrity hashes), started by a script file:
    no inline script, nothing from another site, so the site's usual CSP holds."""
    page = web.pages.get_template("docs.html").render(
        title=f"{request.app.title} — docs", openapi_url=OPENAPI_URL, assets=SWAGGER_UI_URL, sri=SWAGGER_UI_FILES
    )
    return HTMLResponse(page)


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
