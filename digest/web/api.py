"""The JSON API under /api/: the same actions as the pages, for scripts and the live preview.

JSON bodies cannot be sent cross-site without a CORS preflight (which we never grant), so these
endpoints need no CSRF token; link tokens still authorise everything about a subscriber."""

from __future__ import annotations

from contextlib import suppress
from dataclasses import asdict, fields
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, Field

from digest.config import Settings
from digest.feedback import Feedback, read_feedback, record, recorded, undo
from digest.latex import latex_to_text
from digest.models import (
    DEFAULT_PREFERENCES,
    TRENDING_MAX,
    Frequency,
    Preferences,
    Subscriber,
    SubscriberStatus,
)
from digest.signup import (
    LinkError,
    confirm,
    next_link_at,
    request_new_link,
    request_signup,
    set_paused,
    update_preferences,
)
from digest.subscribers import MAX_CAP, MAX_TOPICS, SubscriberError, unsubscribe
from digest.tokens import Purpose
from digest.web.deps import (
    INVALID_LINK,
    LINKS_LIMITED,
    LimitsDep,
    NowDep,
    PapersDep,
    ReadersDep,
    SessionDep,
    SettingsDep,
    TrainDep,
    WebDep,
)
from digest.web.forms import (
    MAX_EXAMPLES,
    NOT_TEXT,
    TITLE_DAYS,
    form_values,
    is_text,
    read_preferences,
    read_signup,
)
from digest.web.previews import Preview, lookback_of, preview

router = APIRouter(prefix="/api", tags=["subscriptions"])
SENT = (
    "If this address can receive our emails, a message with a link is on its way to it, or one was sent in "
    "the last {hours} hours. If you don't see it, check your spam folder; a new link can be sent after {when}."
)
PREVIEWS_PER_WINDOW = 300
_DEFAULT = DEFAULT_PREFERENCES
_PREFERENCE_FIELDS = {f.name for f in fields(Preferences)}


def _text(value: object) -> object:
    """Refuse, at the edge, a string that is not text (a lone surrogate such as JSON's "\\ud800",
    a control character): 422 naming the field, before anything stores or mails it."""
    if isinstance(value, str) and not is_text(value):
        raise ValueError(NOT_TEXT)
    return value


Text = Annotated[str, BeforeValidator(_text)]


def _one_line(topic: str) -> str:
    """A topic as one line: a line break in it would make two topics of it."""
    return topic.replace("\r", " ").replace("\n", " ")


class _Selection(BaseModel):
    """What chooses a reader's papers: the topics (none: the trending papers only), the minimum
    upvotes, the cap, and how many trending papers (null: none, unless there are no topics; then 10)."""

    topics: list[Text] = Field(
        default_factory=list, max_length=MAX_TOPICS, examples=[['"long context"', "cat:cs.CL retrieval"]]
    )
    min_upvotes: int | None = Field(default=_DEFAULT.min_upvotes, ge=0)
    max_papers: int = Field(default=_DEFAULT.max_papers, ge=1, le=MAX_CAP)
    trending: int | None = Field(default=_DEFAULT.trending, ge=1, le=TRENDING_MAX, examples=[10])

    def preferences(self) -> Preferences:
        """The preferences as sent, each topic kept on one line (what is not sent: the defaults)."""
        values = self.model_dump(include=_PREFERENCE_FIELDS)
        return Preferences(**{**values, "topics": [_one_line(t) for t in self.topics]})

    def form(self) -> dict[str, str]:
        """The same fields as the HTML form, so both share one validator."""
        return form_values(self.preferences())


class _Preferences(_Selection):
    frequency: Frequency = _DEFAULT.frequency
    send_hour: int = Field(default=_DEFAULT.send_hour, ge=0, le=23)
    timezone: Text = _DEFAULT.timezone
    weekly_day: int = Field(default=_DEFAULT.weekly_day, ge=0, le=6)


# The sign-up form's "Papers you liked": each becomes one `like:ID` topic (stored with the topics).
# Their number is checked by the form's validator, for its clearer message ("At most 5 papers …").
Examples = Annotated[
    list[Text],
    Field(
        default_factory=list,
        json_schema_extra={"maxItems": MAX_EXAMPLES},
        description=(
            f"Up to {MAX_EXAMPLES} papers the reader liked, each an arXiv id (`2406.12345`, `arXiv:2406.12345v2`), "
            f"an arxiv.org or huggingface.co/papers link, or the title of a paper first seen in the last "
            f"{TITLE_DAYS} days; each is added to the topics as `like:ID`."
        ),
        examples=[["2406.12345"]],
    ),
]


def _with_examples(form: dict[str, str], examples: list[str]) -> dict[str, str]:
    return {**form, "examples": "\n".join(_one_line(e) for e in examples)}


class SelectionIn(_Selection):
    examples: Examples

    def form(self) -> dict[str, str]:
        return _with_examples(super().form(), self.examples)


class PreferencesIn(_Preferences):
    examples: Examples

    def form(self) -> dict[str, str]:
        return _with_examples(super().form(), self.examples)


class SubscribeIn(PreferencesIn):
    email: Text = Field(max_length=200, examples=["ada@example.org"])


class EmailIn(BaseModel):
    email: Text = Field(max_length=200)


class Status(BaseModel):
    status: str
    message: str = ""


class Accepted(Status):
    """The answer to every sign-up and resend, the same whatever state the address is in."""

    new_link_after: datetime


def accepted(settings: Settings, now: datetime) -> Accepted:
    """What every sign-up and resend is answered (only `now` goes into it, never the address)."""
    when = next_link_at(settings, now)
    message = SENT.format(hours=settings.confirm_cooldown_hours, when=f"{when:%Y-%m-%d %H:%M} UTC")
    return Accepted(status="accepted", message=message, new_link_after=when)


class SubscriptionOut(_Preferences):
    email: str
    status: SubscriberStatus


def invalid_body(_request: Request, exc: Exception) -> JSONResponse:
    """API bodies that do not fit the schema: one message per field, like the form errors."""
    problems = exc.errors() if isinstance(exc, RequestValidationError) else []
    return _invalid({_field(e): str(e["msg"]).removeprefix("Value error, ") for e in problems})


def _field(problem: dict[str, Any]) -> str:
    """'topics.0' for the first topic of a body: the place of a problem without the 'body' prefix
    ('body' itself when the body is no JSON at all)."""
    if problem.get("type") == "json_invalid":
        return "body"
    return ".".join(str(part) for part in problem["loc"] if part != "body") or "body"


def _invalid(errors: dict[str, str]) -> JSONResponse:
    return JSONResponse({"errors": errors}, status_code=422)


@router.post("/subscribe", status_code=202, response_model=Accepted, responses={422: {}, 429: {}})
def subscribe(
    body: SubscribeIn, limits: LimitsDep, session: SessionDep, papers: PapersDep, web: WebDep, now: NowDep
) -> JSONResponse | Accepted:
    """Sign up (double opt-in): the answer is the same whatever state the address is in."""
    limits.check("signup", web.settings.signup_rate_limit)
    result = read_signup({**body.form(), "email": body.email}, papers.titled)
    if result.errors or result.prefs is None:
        return _invalid(_api_names(result.errors))
    try:
        request_signup(session, web.settings, result.email, result.prefs, now)
    except SubscriberError as exc:
        return _invalid({"email": str(exc)})
    web.kick()
    return accepted(web.settings, now)


@router.post("/resend", status_code=202, response_model=Accepted, responses={422: {}, 429: {}})
def resend(body: EmailIn, limits: LimitsDep, session: SessionDep, web: WebDep, now: NowDep) -> JSONResponse | Accepted:
    """Ask for a new confirmation link for a pending sign-up (same answer for every address)."""
    limits.check("signup", web.settings.signup_rate_limit)
    with suppress(SubscriberError):
        request_new_link(session, web.settings, body.email, now)
    web.kick()
    return accepted(web.settings, now)


@router.post("/preview", responses={422: {}, 429: {}})
def preview_topics(body: SelectionIn, limits: LimitsDep, papers: PapersDep, web: WebDep, now: NowDep) -> JSONResponse:
    """What these settings would have brought in the last 7 days, as the digest would choose it:
    `trending` (null when none are asked for) and `papers` on the topics, with `more` beyond the cap;
    with `examples`, the papers the reader liked, each with its title and a `note` when it brings nothing yet."""
    limits.check("preview", PREVIEWS_PER_WINDOW)
    errors: dict[str, str] = {}
    prefs = read_preferences(body.form(), errors, papers.titled)
    if prefs is None:
        return _invalid(_api_names(errors))
    return JSONResponse(_preview_json(preview(web.previews, prefs, now, lookback_of(web.settings))))


def _preview_json(shown: Preview) -> dict[str, object]:
    trending = None if shown.trending is None else [p.json() for p in shown.trending]
    found: dict[str, object] = {"trending": trending, "papers": [p.json() for p in shown.papers], "more": shown.more}
    if shown.examples:  # only for a body with examples: the answer to any other is as it always was
        found["examples"] = [e.json() for e in shown.examples]
    return found


def _api_names(errors: dict[str, str]) -> dict[str, str]:
    """Form errors under the API's field names (the form's trending_count is the body's trending)."""
    return {"trending" if name == "trending_count" else name: message for name, message in errors.items()}


@router.post("/confirm/{token}", response_model=Status, responses={429: {}, 400: {}}, dependencies=[LINKS_LIMITED])
def confirm_subscription(token: str, session: SessionDep, settings: SettingsDep, now: NowDep) -> Status:
    """Confirm a sign-up with the token from the confirmation email."""
    try:
        sub = confirm(session, settings, token, now)
    except LinkError as exc:
        raise HTTPException(status_code=400, detail=INVALID_LINK) from exc
    return Status(status=sub.status.value)


def _out(sub: Subscriber) -> SubscriptionOut:
    return SubscriptionOut(email=sub.email, status=sub.status, **asdict(sub.preferences))


@router.get(
    "/manage/{token}", response_model=SubscriptionOut, responses={429: {}, 400: {}}, dependencies=[LINKS_LIMITED]
)
def get_subscription(token: str, readers: ReadersDep) -> SubscriptionOut:
    """The subscription a manage token is for."""
    return _out(readers.for_api(Purpose.MANAGE, token))


@router.put(
    "/manage/{token}",
    response_model=SubscriptionOut,
    responses={429: {}, 400: {}, 422: {}},
    dependencies=[LINKS_LIMITED],
)
def put_subscription(
    token: str, body: PreferencesIn, readers: ReadersDep, session: SessionDep, papers: PapersDep
) -> JSONResponse | SubscriptionOut:
    """Replace the topics and schedule (`examples` join the topics)."""
    errors: dict[str, str] = {}
    prefs = read_preferences(body.form(), errors, papers.titled)
    if prefs is None:
        return _invalid(_api_names(errors))
    sub = readers.for_api(Purpose.MANAGE, token)
    try:
        return _out(update_preferences(session, sub, prefs))
    except LinkError as exc:
        raise HTTPException(status_code=409, detail="Unsubscribed: sign up again.") from exc


# Documented as its two values (so clients and schema-driven tests know them); any other is 404.
ActionPath = Annotated[str, Path(json_schema_extra={"enum": ["pause", "resume"]})]


@router.post(
    "/manage/{token}/{action}",
    response_model=SubscriptionOut,
    responses={429: {}, 400: {}, 404: {}, 409: {}},
    dependencies=[LINKS_LIMITED],
)
def pause_or_resume(
    token: str, action: ActionPath, readers: ReadersDep, session: SessionDep, now: NowDep
) -> SubscriptionOut:
    """`pause` or `resume` the digests."""
    if action not in ("pause", "resume"):
        raise HTTPException(status_code=404, detail="Use pause or resume.")
    sub = readers.for_api(Purpose.MANAGE, token)
    try:
        return _out(set_paused(session, sub, action == "pause", now))
    except LinkError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc


@router.post("/unsubscribe/{token}", response_model=Status, responses={429: {}, 400: {}}, dependencies=[LINKS_LIMITED])
def unsubscribe_api(token: str, readers: ReadersDep, session: SessionDep, now: NowDep) -> Status:
    """Unsubscribe (idempotent)."""
    unsubscribe(session, readers.for_api(Purpose.UNSUBSCRIBE, token), now)
    return Status(status="unsubscribed")


class FeedbackOut(BaseModel):
    """A feedback link's vote: `value` +1 (more like this) or -1 (less like this) on a paper, for
    the reader's `topic` it matched (null: none), and whether it is `recorded` now."""

    paper_id: str
    title: str
    value: int
    topic: str | None
    recorded: bool


def _feedback(token: str, session: SessionDep, settings: SettingsDep, now: NowDep) -> Feedback:
    try:
        return read_feedback(session, settings, token, now)
    except LinkError as exc:
        raise HTTPException(status_code=400, detail=INVALID_LINK) from exc


FeedbackDep = Annotated[Feedback, Depends(_feedback)]


def _feedback_out(fb: Feedback, is_recorded: bool) -> FeedbackOut:
    return FeedbackOut(
        paper_id=fb.paper.id, title=latex_to_text(fb.paper.title), value=fb.value, topic=fb.topic, recorded=is_recorded
    )


@router.get("/feedback/{token}", response_model=FeedbackOut, responses={429: {}, 400: {}}, dependencies=[LINKS_LIMITED])
def get_feedback(fb: FeedbackDep, session: SessionDep) -> FeedbackOut:
    """What a feedback link records (nothing is recorded by reading it)."""
    return _feedback_out(fb, recorded(session, fb))


@router.post(
    "/feedback/{token}", response_model=FeedbackOut, responses={429: {}, 400: {}}, dependencies=[LINKS_LIMITED]
)
def post_feedback(fb: FeedbackDep, session: SessionDep, train: TrainDep, now: NowDep) -> FeedbackOut:
    """Record the vote (idempotent; replaces a vote the other way on the same paper)."""
    if record(session, fb, now) and fb.sub.id is not None:
        train(fb.sub.id)
    return _feedback_out(fb, True)


@router.delete(
    "/feedback/{token}", response_model=FeedbackOut, responses={429: {}, 400: {}}, dependencies=[LINKS_LIMITED]
)
def delete_feedback(fb: FeedbackDep, session: SessionDep, train: TrainDep) -> FeedbackOut:
    """Undo the vote (idempotent; a newer vote the other way is left alone)."""
    if undo(session, fb) and fb.sub.id is not None:
        train(fb.sub.id)
    return _feedback_out(fb, recorded(session, fb))
