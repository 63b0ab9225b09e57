"""Reading what a visitor typed into Preferences, with an error per field that says what is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import available_timezones

from digest.models import DEFAULT_PREFERENCES, TRENDING_DEFAULT, TRENDING_MAX, Frequency, Preferences
from digest.query import QueryError, parse_query
from digest.subscribers import MAX_CAP, MAX_TOPICS, SubscriberError, normalize_email

MAX_FIELD_CHARS = 200
# Every IANA zone this machine knows (tzdata is a dependency, so the list is the same everywhere).
ZONES = ["UTC", *sorted(available_timezones() - {"UTC"})]
_ZONE_SET = frozenset(ZONES)
MAX_TOPICS_CHARS = 20_000
NOT_TEXT = "This has characters that are not text: type it again, or paste it as plain text."
NOT_A_FILE = "Send this as text, not as a file."
# The fields the sign-up preview depends on: with an error in one of them there is nothing to preview.
PREVIEW_FIELDS = frozenset({"topics", "min_upvotes", "max_papers", "trending_count"})
# Control characters no one types (tab, CR and LF are left to each field's own rules).
_CONTROLS = frozenset(chr(c) for c in (*range(0x20), 0x7F)) - {"\t", "\r", "\n"}


class PostedForm(dict[str, str]):
    """The text fields of a posted form. A field that came as something else — a file, or bytes
    that are not UTF-8 — is left empty here, and `problems` says what was wrong with it."""

    def __init__(self, fields: Mapping[str, str] | None = None, problems: Mapping[str, str] | None = None) -> None:
        super().__init__(fields or {})
        self.problems = dict(problems or {})


def is_text(value: str) -> bool:
    """Whether a value is text that can be stored and sent: valid Unicode (no lone surrogate, as
    JSON's "\\ud800" or undecodable bytes give), without control characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return not _CONTROLS.intersection(value)


def field_problems(form: Mapping[str, str]) -> dict[str, str]:
    """The fields whose value is not text, each with its error (a posted form's own problems first)."""
    problems = dict(form.problems) if isinstance(form, PostedForm) else {}
    for name, value in form.items():
        if name not in problems and not is_text(value):
            problems[name] = NOT_TEXT
    return problems


def _text_only(form: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The form with every field that is not text emptied, and those fields' errors."""
    problems = field_problems(form)
    return {name: "" if name in problems else value for name, value in form.items()}, problems


@dataclass
class FormResult:
    """The cleaned email and preferences, or errors keyed by field name."""

    email: str = ""
    prefs: Preferences | None = None
    errors: dict[str, str] = field(default_factory=dict)


def topic_lines(text: str) -> list[str]:
    """One topic per non-empty line (CR/LF of any kind separate topics)."""
    return [line.strip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]


def topic_errors(topics: list[str]) -> str | None:
    """The first problem with a list of topics, naming the line and column (none at all is fine: the
    subscription is then the trending papers)."""
    if len(topics) > MAX_TOPICS:
        return f"At most {MAX_TOPICS} topics."
    for n, topic in enumerate(topics, start=1):
        try:
            parse_query(topic)
        except QueryError as exc:
            where = f"line {n}, column {exc.column}" if len(topics) > 1 else f"column {exc.column}"
            return f"{where}: {exc.reason}"
    return None


def _optional_int(form: Mapping[str, str], name: str, low: int, high: int, errors: dict[str, str]) -> int | None:
    """A whole number from low to high; None if the field is missing or blank, or not a number (then
    with its error)."""
    value = form.get(name, "")
    if "\r" in value or "\n" in value:
        errors[name] = "This field cannot contain line breaks."
        return None
    value = value.strip()
    if not value:
        return None
    if not value.isascii() or not value.lstrip("-").isdigit():
        errors[name] = "Enter a whole number."
        return None
    number = int(value)
    if not low <= number <= high:
        errors[name] = f"Enter a number from {low} to {high}."
    return number


def _int(form: Mapping[str, str], name: str, low: int, high: int, errors: dict[str, str], default: int) -> int:
    """A whole number from low to high, or `default` if the field is missing or blank."""
    number = _optional_int(form, name, low, high, errors)
    return default if number is None else number


def _one_line(form: Mapping[str, str], name: str, errors: dict[str, str]) -> str:
    value = form.get(name, "")
    if "\r" in value or "\n" in value:
        errors[name] = "This field cannot contain line breaks."
    elif len(value) > MAX_FIELD_CHARS:
        errors[name] = "This is too long."
    return value.strip()


def _email(form: Mapping[str, str], errors: dict[str, str]) -> str:
    raw = _one_line(form, "email", errors)
    if "email" in errors:
        return raw
    try:
        return normalize_email(raw)
    except SubscriberError:
        errors["email"] = "Enter a valid email address, like ada@example.org."
        return raw


def _schedule(form: Mapping[str, str], errors: dict[str, str]) -> tuple[Frequency, int, str, int]:
    default = DEFAULT_PREFERENCES
    frequency = form.get("frequency", default.frequency.value)
    if frequency not in {f.value for f in Frequency}:
        errors["frequency"] = "Choose daily, weekdays or weekly."
        frequency = default.frequency.value
    hour = _int(form, "send_hour", 0, 23, errors, default.send_hour)
    tz = _one_line(form, "timezone", errors) or default.timezone
    if "timezone" not in errors and tz not in _ZONE_SET:
        errors["timezone"] = "Choose a time zone from the list."
    weekly_day = _int(form, "weekly_day", 0, 6, errors, default.weekly_day)
    return Frequency(frequency), hour, tz, weekly_day


def read_preferences(form: Mapping[str, str], errors: dict[str, str]) -> Preferences | None:
    """Preferences from form fields (everything but the email); problems go into `errors`. A field
    that is missing or blank takes its value from DEFAULT_PREFERENCES; one that is not text (see
    `field_problems`) is refused."""
    prefs = _read_form(form, errors)
    return None if errors else prefs


def preview_preferences(form: Mapping[str, str], errors: dict[str, str]) -> Preferences | None:
    """The preferences the sign-up preview shows papers for, with every problem in `errors`: None only
    when a field the preview depends on (PREVIEW_FIELDS) is wrong — a bad time zone changes nothing
    about which papers the last 7 days would have brought."""
    prefs = _read_form(form, errors)
    return None if PREVIEW_FIELDS.intersection(errors) else prefs


def _read_form(form: Mapping[str, str], errors: dict[str, str]) -> Preferences:
    text, problems = _text_only(form)
    prefs = _read(text, errors)
    errors.update(problems)
    return prefs


def _topics(form: Mapping[str, str], errors: dict[str, str]) -> list[str]:
    raw_topics = form.get("topics", "")
    topics = topic_lines(raw_topics)
    if len(raw_topics) > MAX_TOPICS_CHARS:
        errors["topics"] = "That is far too much text for topics."
    elif problem := topic_errors(topics):
        errors["topics"] = problem
    return topics


def _trending(form: Mapping[str, str], topics: list[str], errors: dict[str, str]) -> int | None:
    """How many trending papers: the number beside the box when the box is ticked, or when there are
    no topics (a subscription without topics is a trending one, ticked or not: the page says so, and
    without JavaScript nothing ticks the box); None when topics are given and the box is not ticked."""
    if topics and not form.get("trending", "").strip():
        return None
    return _int(form, "trending_count", 1, TRENDING_MAX, errors, TRENDING_DEFAULT)


def _read(form: Mapping[str, str], errors: dict[str, str]) -> Preferences:
    """Preferences from form fields already checked to be text; a field in `errors` holds what was
    sent, or its default."""
    topics = _topics(form, errors)
    frequency, hour, tz, weekly_day = _schedule(form, errors)
    min_upvotes = _optional_int(form, "min_upvotes", 0, 100_000, errors)
    cap = _int(form, "max_papers", 1, MAX_CAP, errors, DEFAULT_PREFERENCES.max_papers)
    trending = _trending(form, topics, errors)
    return Preferences(topics, frequency, hour, tz, weekly_day, min_upvotes, cap, trending)


def form_values(prefs: Preferences) -> dict[str, str]:
    """Preferences as the form's fields: the sign-up page's defaults, the manage page's current
    values, and what the API's bodies are checked as."""
    return {
        "topics": "\n".join(prefs.topics),
        "frequency": prefs.frequency.value,
        "send_hour": str(prefs.send_hour),
        "timezone": prefs.timezone,
        "weekly_day": str(prefs.weekly_day),
        "min_upvotes": "" if prefs.min_upvotes is None else str(prefs.min_upvotes),
        "max_papers": str(prefs.max_papers),
        "trending": "on" if prefs.trending is not None else "",
        "trending_count": str(prefs.trending or TRENDING_DEFAULT),
    }


def read_signup(form: Mapping[str, str]) -> FormResult:
    """The whole sign-up form."""
    errors: dict[str, str] = {}
    text, problems = _text_only(form)
    email = _email(text, errors)
    prefs = _read(text, errors)
    errors.update(problems)
    return FormResult(email, None if errors else prefs, errors)
