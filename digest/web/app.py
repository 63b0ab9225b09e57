"""Builds the web app from Settings: its shared state, the routers of pages, api and ops, the error
handlers, and the security middleware around it all. Nothing else lives here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine

from digest.clock import utcnow
from digest.config import Settings
from digest.db import init_db, make_engine
from digest.index import semantics_for
from digest.metrics import DatabaseCollector
from digest.web import api, ops, pages, reading
from digest.web.deps import Web
from digest.web.dispatch import NoticeThread, celery_kick
from digest.web.forms import ZONES
from digest.web.html import ERROR_PAGES, environment
from digest.web.previews import IndexCache
from digest.web.security import (
    BodyTooLarge,
    MemoryRateLimiter,
    RateLimiter,
    RedisRateLimiter,
    SecurityMiddleware,
    too_large,
)

STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    settings: Settings,
    *,
    engine: Engine | None = None,
    clock: Callable[[], datetime] = utcnow,
    limiter: RateLimiter | None = None,
    send_in_process: bool | None = None,
    kick: Callable[[], None] | None = None,
) -> SecurityMiddleware:
    """The ASGI app. Without a broker, queued emails are sent by a thread of this process. `kick`
    replaces the prompt to send them (tests count the prompts instead)."""
    engine = engine or make_engine(settings.database_url)
    init_db(engine)
    in_process = send_in_process if send_in_process is not None else not settings.broker_url
    sender = NoticeThread(settings, engine, clock) if in_process else None
    kick = kick or (sender.kick if sender else celery_kick(settings))
    app = FastAPI(
        title=f"{settings.list_name} API",
        lifespan=_lifespan,
        docs_url=None,
        openapi_url=ops.OPENAPI_URL,
        redoc_url=None,
        # No "add or drop the trailing slash" redirects: Starlette builds their Location from the
        # request's Host header, so a forged Host would get a redirect to any site. A wrong path is 404.
        redirect_slashes=False,
    )
    app.state.web = _state(settings, engine, clock, limiter or _default_limiter(settings), kick)
    app.state.sender = sender
    _add_routes(app)
    _add_error_handlers(app)
    return SecurityMiddleware(app, settings.max_body_bytes)


def _default_limiter(settings: Settings) -> RateLimiter:
    """Counters shared through Redis when there is a broker; in this process's memory otherwise."""
    return RedisRateLimiter(settings.broker_url) if settings.broker_url else MemoryRateLimiter()


def _state(
    settings: Settings, engine: Engine, clock: Callable[[], datetime], limiter: RateLimiter, kick: Callable[[], None]
) -> Web:
    metrics = CollectorRegistry()
    metrics.register(DatabaseCollector(engine, clock))
    return Web(
        settings=settings,
        engine=engine,
        limiter=limiter,
        clock=clock,
        kick=kick,
        pages=environment(),
        previews=IndexCache(engine, semantics_for(settings, engine)),
        zones=ZONES,
        metrics=metrics,
    )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Runs the in-process notice sender, if this app has one, while the app serves."""
    sender: NoticeThread | None = app.state.sender
    if sender:
        sender.start()
    yield
    if sender:
        sender.stop()


def _add_routes(app: FastAPI) -> None:
    app.mount(ops.SWAGGER_UI_URL, StaticFiles(directory=str(ops.SWAGGER_UI_DIR)), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(reading.router)
    app.include_router(ops.router)


def _add_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BodyTooLarge, too_large)
    app.add_exception_handler(RequestValidationError, api.invalid_body)
    for error, page in ERROR_PAGES.items():
        app.add_exception_handler(error, page)
