"""What request handlers share, as FastAPI dependencies: the app's state, the settings, a database
session, the clock's now, the posted form and its CSRF check, rate limits, and the subscriber a
link token names. Handlers take them as the `...Dep` types below."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Depends, HTTPException, Request
from jinja2 import Environment
from prometheus_client import CollectorRegistry
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from digest.config import Settings
from digest.db import open_session
from digest.feedback import Feedback, read_feedback
from digest.models import Paper, Subscriber, SubscriberStatus
from digest.parse import arxiv_id
from digest.signup import LinkError, subscriber_for
from digest.text import WORD
from digest.tokens import Purpose
from digest.web.dispatch import reader_trainer
from digest.web.forms import NOT_A_FILE, NOT_STORED, NOT_TEXT, TITLE_DAYS, LikedPaper, PostedForm
from digest.web.previews import IndexCache
from digest.web.security import CSRF_FIELD, RateLimiter, csrf_cookie_name, csrf_ok, visitor_key

INVALID_LINK = "This link is not valid."
URLENCODED = "application/x-www-form-urlencoded"


@dataclass
class Web:
    """Everything a request handler needs, kept on `app.state.web` by create_app."""

    settings: Settings
    engine: Engine
    limiter: RateLimiter
    clock: Callable[[], datetime]
    kick: Callable[[], None]  # prompts the notice sender after a request queues an email
    pages: Environment
    previews: IndexCache
    zones: list[str]
    metrics: CollectorRegistry
    # Called with a reader's id when their votes change (made from the settings on first use).
    train: Callable[[int], None] | None = None


def get_web(request: Request) -> Web:
    """The shared state of the app handling this request."""
    state: Web = request.app.state.web
    return state


WebDep = Annotated[Web, Depends(get_web)]


def get_settings(web: WebDep) -> Settings:
    return web.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(web: WebDep) -> Iterator[Session]:
    """One session per request, closed when the handler returns (before the answer is sent)."""
    with open_session(web.engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_now(web: WebDep) -> datetime:
    """The app's clock, read once per request: every token is signed and checked at this time."""
    return web.clock()


NowDep = Annotated[datetime, Depends(get_now)]


def get_trainer(web: WebDep) -> Callable[[int], None]:
    """The hook to call after a reader's votes change: queues their retraining when there is a broker."""
    if web.train is None:
        web.train = reader_trainer(web.settings)
    return web.train


TrainDep = Annotated[Callable[[int], None], Depends(get_trainer)]


# --- forms ------------------------------------------------------------------------------------------


async def posted_form(request: Request) -> PostedForm:
    """The fields of a posted form (awaited here, so the handlers taking it can be plain `def`). A
    field sent as a file, or whose bytes are not UTF-8, is not text: it is kept out, with its problem."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == URLENCODED:
        return url_form(await request.body())
    form = await request.form()
    fields = {name: value for name, value in form.items() if isinstance(value, str)}
    files = {name: NOT_A_FILE for name, value in form.items() if not isinstance(value, str)}
    return PostedForm(fields | dict.fromkeys(files, ""), files)


def url_form(body: bytes) -> PostedForm:
    """An application/x-www-form-urlencoded body read strictly: a value that is not UTF-8 is a
    problem of its field, never replaced with U+FFFD (Starlette's reading) or accepted as bytes."""
    fields: dict[str, str] = {}
    problems: dict[str, str] = {}
    for pair in body.split(b"&"):
        if not pair:
            continue
        raw_name, _, raw_value = pair.partition(b"=")
        name = unquote_to_bytes(raw_name.replace(b"+", b" ")).decode("utf-8", "replace")
        try:
            fields[name] = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            fields[name], problems[name] = "", NOT_TEXT
        else:
            problems.pop(name, None)  # the last value of a repeated field is the one read
    return PostedForm(fields, problems)


FormDep = Annotated[PostedForm, Depends(posted_form)]


class CsrfFailed(Exception):
    """A form POST without the CSRF field that matches the visitor's cookie (pages answer 403)."""


def require_csrf(request: Request, form: FormDep, settings: SettingsDep) -> None:
    """Raise CsrfFailed unless the posted form carries the CSRF field matching the visitor's cookie."""
    cookie = request.cookies.get(csrf_cookie_name(settings.base_url))
    if not csrf_ok(settings.secret_key, cookie, form.get(CSRF_FIELD)):
        raise CsrfFailed


# For a route's `dependencies=[...]`: those are solved before the handler's own parameters, so the
# CSRF check comes before anything else the route does (a token look-up included).
CSRF_CHECKED = Depends(require_csrf)


# --- rate limits ------------------------------------------------------------------------------------


def client_ip(request: Request) -> str:
    """The visitor's address (run uvicorn with --proxy-headers behind a reverse proxy)."""
    return request.client.host if request.client else "unknown"


@dataclass(frozen=True)
class RateLimits:
    """This visitor's counters in the app's rate limiter."""

    limiter: RateLimiter
    visitor: str  # an IPv4 address, or the /64 of an IPv6 one (see security.visitor_key)
    window: int

    def check(self, what: str, limit: int) -> None:
        """Count one `what` for this visitor; RateLimited (answered 429) if that goes over `limit`."""
        if (wait := self.limiter.hit(f"{what}:{self.visitor}", limit, self.window)) is not None:
            raise RateLimited(wait)


def get_limits(request: Request, web: WebDep) -> RateLimits:
    return RateLimits(web.limiter, visitor_key(client_ip(request)), web.settings.rate_window_seconds)


LimitsDep = Annotated[RateLimits, Depends(get_limits)]


class RateLimited(Exception):
    """Too many requests of one kind from one visitor (answered 429 with Retry-After, page or JSON)."""

    def __init__(self, wait: int) -> None:
        super().__init__(wait)
        self.wait = wait


def limit_links(limits: LimitsDep, settings: SettingsDep) -> None:
    """Count one request that carries a link token (DIGEST_LINK_RATE_LIMIT)."""
    limits.check("link", settings.link_rate_limit)


# For the routes that take a link token (confirm, manage, unsubscribe pages and their API), solved
# first. The RFC 8058 one-click unsubscribe POST is left out: mail providers send it from few
# addresses for many readers, and an unsubscribe must never wait.
LINKS_LIMITED = Depends(limit_links)


# --- link tokens ------------------------------------------------------------------------------------


class BadLink(Exception):
    """A link on a page that does not work: answered with the neutral bad-link page (400)."""


class Unsubscribed(Exception):
    """A page's link for a reader who has left: answered with the 'You are unsubscribed' page."""

    def __init__(self, email: str) -> None:
        super().__init__(email)
        self.email = email


@dataclass(frozen=True)
class Readers:
    """Finds the subscriber a link token names, in this request's session, at the app's now."""

    session: Session
    settings: Settings
    now: datetime

    def find(self, purpose: Purpose, token: str) -> Subscriber:
        """The subscriber, or LinkError (a confirmation link also expires)."""
        return subscriber_for(self.session, self.settings, purpose, token, now=self.now)

    def for_api(self, purpose: Purpose, token: str) -> Subscriber:
        """The subscriber, or the API's 400 for a link that does not work."""
        try:
            return self.find(purpose, token)
        except LinkError as exc:
            raise HTTPException(status_code=400, detail=INVALID_LINK) from exc

    def for_page(self, purpose: Purpose, token: str) -> Subscriber:
        """The subscriber, or BadLink; for a reader who has left, Unsubscribed (a confirmation link: BadLink)."""
        try:
            sub = self.find(purpose, token)
        except LinkError as exc:
            raise BadLink from exc
        if sub.status is SubscriberStatus.UNSUBSCRIBED:
            raise BadLink if purpose is Purpose.CONFIRM else Unsubscribed(sub.email)
        return sub


def get_readers(session: SessionDep, settings: SettingsDep, now: NowDep) -> Readers:
    return Readers(session, settings, now)


ReadersDep = Annotated[Readers, Depends(get_readers)]


def _page_reader(purpose: Purpose) -> Any:
    """A dependency: the subscriber the `token` path parameter names, as `Readers.for_page` finds it."""

    def reader(token: str, readers: ReadersDep) -> Subscriber:
        return readers.for_page(purpose, token)

    return Depends(reader)


ConfirmReader = Annotated[Subscriber, _page_reader(Purpose.CONFIRM)]
ManageReader = Annotated[Subscriber, _page_reader(Purpose.MANAGE)]
UnsubscribeReader = Annotated[Subscriber, _page_reader(Purpose.UNSUBSCRIBE)]


def _feedback(token: str, session: SessionDep, settings: SettingsDep, now: NowDep) -> Feedback:
    """The vote the `token` path parameter asks for, or BadLink (whatever is wrong with it)."""
    try:
        return read_feedback(session, settings, token, now)
    except LinkError as exc:
        raise BadLink from exc


FeedbackLink = Annotated[Feedback, Depends(_feedback)]


# --- stored papers, as the forms name them -------------------------------------------------------------

TITLE_WORDS = 12  # a typed title's longest words that pick the candidates (each one ILIKE: linear)
TITLE_CANDIDATES = 100


@dataclass(frozen=True)
class StoredPapers:
    """The papers in this request's session that a reader's "Papers you liked" may name."""

    session: Session
    now: datetime

    def titled(self, title: str) -> list[tuple[str, str]]:
        """(id, title) of the arXiv papers first seen in the last TITLE_DAYS days whose title holds
        every word of `title` (case aside), newest first: the candidates `forms.resolve_title`
        picks from."""
        found = sorted(set(WORD.findall(title)), key=lambda w: (-len(w), w))[:TITLE_WORDS]
        if not found:
            return []
        since = self.now - timedelta(days=TITLE_DAYS)
        query = (
            select(Paper.id, Paper.title)
            .where(col(Paper.first_seen) >= since, *(col(Paper.title).ilike(f"%{word}%") for word in found))
            .order_by(col(Paper.first_seen).desc(), col(Paper.id))
            .limit(TITLE_CANDIDATES)
        )
        return [(paper_id, their) for paper_id, their in self.session.exec(query) if arxiv_id(paper_id) == paper_id]

    def liked(self, ids: Sequence[str]) -> list[LikedPaper]:
        """Example papers by id, each with its title when we have the paper."""
        titles: dict[str, str] = {}
        if ids:
            titles.update(self.session.exec(select(Paper.id, Paper.title).where(col(Paper.id).in_(ids))).all())
        return [LikedPaper(i, titles.get(i), "" if i in titles else NOT_STORED) for i in ids]


def get_stored_papers(session: SessionDep, now: NowDep) -> StoredPapers:
    return StoredPapers(session, now)


PapersDep = Annotated[StoredPapers, Depends(get_stored_papers)]
