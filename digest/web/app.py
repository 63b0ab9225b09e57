"""The FastAPI app: built from Settings, with pages, the JSON API, and what both share."""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from digest.clock import utcnow
from digest.config import Settings
from digest.db import init_db, make_engine, open_session
from digest.index import load_index
from digest.match import PaperIndex, Selection, select
from digest.metrics import DatabaseCollector
from digest.render import paper_view, topic_label
from digest.web.dispatch import NoticeThread, celery_kick
from digest.web.forms import ZONES
from digest.web.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    DOCS_CSP,
    BodyTooLarge,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    SecurityMiddleware,
    csrf_ok,
    csrf_token,
    new_csrf_cookie,
)

HERE = Path(__file__).resolve().parent
PREVIEW_DAYS = 7
PREVIEW_CAP = 20
INDEX_TTL = timedelta(minutes=5)


@dataclass
class IndexCache:
    """The last 7 days of papers, indexed, rebuilt every few minutes (for the live preview)."""

    engine: Engine
    built_at: datetime | None = None
    index: PaperIndex | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, now: datetime) -> PaperIndex:
        with self.lock:
            if self.index is None or self.built_at is None or now - self.built_at > INDEX_TTL:
                with open_session(self.engine) as session:
                    self.index = load_index(session, now - timedelta(days=PREVIEW_DAYS), now + timedelta(minutes=1))
                self.built_at = now
            return self.index


@dataclass
class Web:
    """Everything a request handler needs, kept on `app.state.web`."""

    settings: Settings
    engine: Engine
    limiter: RateLimiter
    clock: Callable[[], datetime]
    kick: Callable[[], None]
    pages: Environment
    previews: IndexCache
    zones: list[str]


def web(request: Request) -> Web:
    """The shared state of the app handling this request."""
    state: Web = request.app.state.web
    return state


def client_ip(request: Request) -> str:
    """The visitor's address (run uvicorn with --proxy-headers behind a reverse proxy)."""
    return request.client.host if request.client else "unknown"


def limited(request: Request, what: str, limit: int) -> int | None:
    """Count one `what` for this visitor; seconds to wait if over the limit."""
    w = web(request)
    return w.limiter.hit(f"{what}:{client_ip(request)}", limit, w.settings.rate_window_seconds)


def preview(w: Web, topics: Sequence[str], now: datetime) -> tuple[list[Any], int]:
    """Papers of the last 7 days matching topics as typed: the views, and how many more."""
    index = w.previews.get(now)
    chosen: Selection = select(index, topics, candidates=index.all, cap=PREVIEW_CAP)
    return [paper_view(m) for m in chosen.matches], chosen.more


def render_page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
    """Render a page with a CSRF field for its forms, setting the CSRF cookie on first visit."""
    w = web(request)
    cookie = request.cookies.get(CSRF_COOKIE) or new_csrf_cookie()
    values.update(
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token(w.settings.secret_key, cookie),
        list_name=w.settings.list_name,
        topic_label=topic_label,
    )
    response = HTMLResponse(w.pages.get_template(name).render(values), status_code=status)
    if request.cookies.get(CSRF_COOKIE) != cookie:
        secure = w.settings.base_url.startswith("https://")
        response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", secure=secure, path="/")
    return response


def check_csrf(request: Request, form: Any) -> bool:
    """Whether a browser form POST carries the CSRF field matching the visitor's cookie."""
    field_value = form.get(CSRF_FIELD)
    return csrf_ok(web(request).settings.secret_key, request.cookies.get(CSRF_COOKIE), field_value)


def _too_large(request: Request, exc: Exception) -> Response:
    return PlainTextResponse("Request too large.", status_code=413)


def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(str(HERE / "templates")),
        autoescape=select_autoescape(enabled_extensions=("html",), default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    limiter: RateLimiter | None = None,
    send_in_process: bool | None = None,
) -> SecurityMiddleware:
    """The ASGI app. Without a broker, queued emails are sent by a thread of this process."""
    engine = engine or make_engine(settings.database_url)
    init_db(engine)
    in_process = send_in_process if send_in_process is not None else not settings.broker_url
    worker = NoticeThread(settings, engine, clock) if in_process else None
    state = Web(
        settings=settings,
        engine=engine,
        limiter=limiter or (RedisRateLimiter(settings.broker_url) if settings.broker_url else MemoryRateLimiter()),
        clock=clock,
        kick=worker.kick if worker else celery_kick(settings),
        pages=_environment(),
        previews=IndexCache(engine),
        zones=ZONES,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if worker:
            worker.start()
        yield
        if worker:
            worker.stop()

    app = FastAPI(
        title=f"{settings.list_name} API",
        lifespan=lifespan,
        docs_url=None,
        openapi_url="/api/openapi.json",
        redoc_url=None,
    )
    app.state.web = state
    app.add_exception_handler(BodyTooLarge, _too_large)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    from digest.web import api, pages

    app.include_router(api.router)
    app.include_router(pages.router)

    @app.get("/api/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return _docs_page(app.title)

    @app.exception_handler(RequestValidationError)
    def invalid_body(request: Request, exc: RequestValidationError) -> JSONResponse:
        """API bodies that do not fit the schema: one message per field, like the form errors."""
        errors = {".".join(str(p) for p in e["loc"] if p != "body"): str(e["msg"]) for e in exc.errors()}
        return JSONResponse({"errors": errors}, status_code=422)

    registry = CollectorRegistry()
    registry.register(DatabaseCollector(engine, clock))

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        return _readiness(state)

    return SecurityMiddleware(app, settings.max_body_bytes)


def _docs_page(title: str) -> HTMLResponse:
    """Swagger UI, with a CSP that allows its CDN files and exactly its one inline script."""
    page = get_swagger_ui_html(openapi_url="/api/openapi.json", title=f"{title} — docs")
    html = bytes(page.body).decode()
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts)
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCS_CSP.format(script=hashes)})


def _readiness(state: Web) -> JSONResponse:
    checks = {"database": _check(lambda: _ping_db(state.engine))}
    if state.settings.broker_url:
        checks["broker"] = _check(lambda: _ping_redis(state.settings.broker_url or ""))
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
    import redis

    redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2).ping()
