"""Reading what a visitor typed into Preferences, with an error per field that says what is wrong."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from zoneinfo import available_timezones

from digest.models import DEFAULT_PREFERENCES, TRENDING_DEFAULT, TRENDING_MAX, Frequency, Preferences
from digest.query import Like, QueryError, parse_query
from digest.subscribers import MAX_CAP, MAX_TOPICS, SubscriberError, normalize_email
from digest.text import clip, words

MAX_FIELD_CHARS = 200
# Every IANA zone this machine knows (tzdata is a dependency, so the list is the same everywhere).
ZONES = ["UTC", *sorted(available_timezones() - {"UTC"})]
_ZONE_SET = frozenset(ZONES)
MAX_TOPICS_CHARS = 20_000
NOT_TEXT = "This has characters that are not text: type it again, or paste it as plain text."
NOT_A_FILE = "Send this as text, not as a file."
# The fields the sign-up preview depends on: with an error in one of them there is nothing to preview.
PREVIEW_FIELDS = frozenset({"topics", "examples", "min_upvotes", "max_papers", "trending_count"})
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


# --- papers the reader liked: each becomes one `like:ID` topic ----------------------------------------

MAX_EXAMPLES = 5
MAX_EXAMPLES_CHARS = 5_000
MAX_EXAMPLE_TITLE = 600
TITLE_DAYS = 90  # a typed title is looked for among the papers first seen this recently (an id: any)
NOT_STORED = "not among our papers yet: it brings nothing until it is"
NOT_READ = "just arrived: it brings papers once it is read, within the hour"
NO_EMBEDDINGS = "not used here: this server runs without embeddings"
# A paper's id or link: `2406.12345`, `arXiv:2406.12345v2`, `hep-th/9901001`, its arxiv.org abs, PDF
# or HTML page, or its Hugging Face page (query and fragment ignored).
_ID = r"(\d{4}\.\d{4,5}|[a-z][a-z\-]*(?:\.[a-z]{2})?/\d{7})"
_PAGE = r"(?:https?://)?(?:www\.|export\.)?(?:arxiv\.org/(?:abs|pdf|html)/|huggingface\.co/papers/)"
_EXAMPLE_ID = re.compile(rf"^(?:arxiv:\s*|{_PAGE})?{_ID}(?:v\d+)?(?:\.pdf)?/?(?:[?#]\S*)?$", re.I)
# What was meant as an id or a link rather than a title: a number, an `arXiv:` reference, a URL.
_LINK = re.compile(r"^\S*(?:://|arxiv\.org|huggingface\.co)", re.I)
_MEANT_AS_ID = re.compile(r"^(?:arxiv:|[a-z][a-z\-]*(?:\.[a-z]{2})?/\d|v?\d[\d.]*(?:v\d*)?$)", re.I)

# A typed title -> (id, title) of the stored papers whose title may be it (resolve_title decides).
TitleSearch = Callable[[str], Sequence[tuple[str, str]]]


class ExampleError(ValueError):
    """An entry of "Papers you liked" that names no paper we can use; the message says why."""


@dataclass(frozen=True)
class LikedPaper:
    """One of a reader's example papers as a page lists it: its id, its title when we have the paper,
    and what keeps it from bringing papers now, if anything."""

    id: str
    title: str | None
    note: str = ""

    def json(self) -> dict[str, object]:
        return asdict(self)


def _canonical(paper_id: str) -> str:
    """An old-style id as arXiv writes it (`math.GT/0309136`); a new-style one as it is."""
    if "/" not in paper_id:
        return paper_id
    archive, _, number = paper_id.partition("/")
    name, dot, subject = archive.partition(".")
    return f"{name.lower()}{dot}{subject.upper()}/{number}"


def example_id(entry: str) -> str | None:
    """The arXiv id (without version) an entry names — an id, `arXiv:` reference, arxiv.org or
    huggingface.co/papers link — or None when the entry is a title; ExampleError for an id or a
    link that names no arXiv paper."""
    found = _EXAMPLE_ID.match(entry)
    if found:
        paper_id = _canonical(found.group(1))
        if "/" not in paper_id and not 1 <= int(paper_id[2:4]) <= 12:
            raise ExampleError(
                f"'{clip(entry, 40)}' is not an arXiv id: it starts with the year and month (2406 is June 2024)"
            )
        return paper_id
    if _LINK.match(entry):
        raise ExampleError(f"'{clip(entry, 60)}' is not a link to an arXiv paper: paste its arXiv id, like 2406.12345")
    if _MEANT_AS_ID.match(entry):
        raise ExampleError(f"'{clip(entry, 40)}' is not an arXiv id like 2406.12345 (or arXiv:2406.12345v2)")
    return None


def _title_key(title: str) -> str:
    return " ".join(title.split()).casefold()


def resolve_title(title: str, stored: Sequence[tuple[str, str]]) -> list[str]:
    """The ids of the stored papers a typed title names: those whose title is the same but for case
    and spacing; failing that, those with the same words (punctuation, accents and plurals aside)."""
    key = _title_key(title)
    exact = [paper_id for paper_id, their in stored if _title_key(their) == key]
    if exact:
        return list(dict.fromkeys(exact))
    typed = words(title)
    return list(dict.fromkeys(paper_id for paper_id, their in stored if words(their) == typed))


def _example(entry: str, search: TitleSearch) -> str:
    """The arXiv id one entry names, or ExampleError saying why it names none."""
    paper_id = example_id(entry)
    if paper_id is not None:
        return paper_id
    if len(entry) > MAX_EXAMPLE_TITLE:
        raise ExampleError("this is too long for a title: paste the paper's arXiv id instead")
    found = resolve_title(entry, search(entry))
    if not found:
        raise ExampleError(
            f'no paper titled "{clip(entry, 80)}" in the last {TITLE_DAYS} days; paste its arXiv id instead'
        )
    if len(found) > 1:
        which = " or ".join(found[:3])
        raise ExampleError(f'{len(found)} papers are titled "{clip(entry, 60)}": paste the arXiv id of yours ({which})')
    return found[0]


def read_examples(text: str, search: TitleSearch) -> tuple[list[str], str | None]:
    """The arXiv ids of the papers a reader liked (one per line: an id, a link or a title), or the
    first problem, naming its line."""
    entries = topic_lines(text)
    if len(text) > MAX_EXAMPLES_CHARS:
        return [], "That is far too much text for a few papers."
    if len(entries) > MAX_EXAMPLES:
        return [], f"At most {MAX_EXAMPLES} papers, one per line (there are {len(entries)})."
    ids: list[str] = []
    for n, entry in enumerate(entries, start=1):
        try:
            ids.append(_example(entry, search))
        except ExampleError as exc:
            reason = str(exc)
            return [], f"line {n}: {reason}" if len(entries) > 1 else reason[0].upper() + reason[1:]
    return list(dict.fromkeys(ids)), None


def example_topic(paper_id: str) -> str:
    """The topic an example paper becomes: the papers close to it in meaning."""
    return f"like:{paper_id}"


def _lone_example(topic: str) -> str | None:
    """The id of a topic that is one `like:ID` and nothing else."""
    try:
        node = parse_query(topic)
    except QueryError:
        return None
    return node.value if isinstance(node, Like) and node.kind == "paper" else None


def split_examples(topics: Sequence[str]) -> tuple[list[str], list[str]]:
    """A reader's topics but their example papers, and those papers' ids (each a topic that is one
    `like:ID`; at most MAX_EXAMPLES of them, any more stay topics)."""
    rest: list[str] = []
    ids: list[str] = []
    for topic in topics:
        paper_id = _lone_example(topic)
        if paper_id is None or (paper_id not in ids and len(ids) == MAX_EXAMPLES):
            rest.append(topic)
        elif paper_id not in ids:
            ids.append(paper_id)
    return rest, ids


def _with_examples(
    form: Mapping[str, str], topics: list[str], errors: dict[str, str], search: TitleSearch
) -> list[str]:
    """The topics and one `like:ID` topic per paper the reader liked (within the per-reader limit)."""
    ids, problem = read_examples(form.get("examples", ""), search)
    liked = [t for t in map(example_topic, ids) if t not in topics]
    room = MAX_TOPICS - len(topics)
    if problem:
        errors["examples"] = problem
    elif len(liked) > room and "topics" not in errors:
        fit = f"{room} more fit" if room > 0 else "they leave room for none"
        errors["examples"] = (
            f"Each paper you liked is a topic, and there can be {MAX_TOPICS}: with your {len(topics)} topics, {fit}."
        )
    return [*topics, *liked]


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


def read_preferences(form: Mapping[str, str], errors: dict[str, str], search: TitleSearch) -> Preferences | None:
    """Preferences from form fields (everything but the email); problems go into `errors`. A field
    that is missing or blank takes its value from DEFAULT_PREFERENCES; one that is not text (see
    `field_problems`) is refused. The papers the reader liked (`examples`) join the topics, one
    `like:ID` each; `search` finds the stored papers a typed title may name."""
    prefs = _read_form(form, errors, search)
    return None if errors else prefs


def preview_preferences(form: Mapping[str, str], errors: dict[str, str], search: TitleSearch) -> Preferences | None:
    """The preferences the sign-up preview shows papers for, with every problem in `errors`: None only
    when a field the preview depends on (PREVIEW_FIELDS) is wrong — a bad time zone changes nothing
    about which papers the last 7 days would have brought."""
    prefs = _read_form(form, errors, search)
    return None if PREVIEW_FIELDS.intersection(errors) else prefs


def _read_form(form: Mapping[str, str], errors: dict[str, str], search: TitleSearch) -> Preferences:
    text, problems = _text_only(form)
    prefs = _read(text, errors, search)
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


def _read(form: Mapping[str, str], errors: dict[str, str], search: TitleSearch) -> Preferences:
    """Preferences from form fields already checked to be text; a field in `errors` holds what was
    sent, or its default."""
    topics = _with_examples(form, _topics(form, errors), errors, search)
    frequency, hour, tz, weekly_day = _schedule(form, errors)
    min_upvotes = _optional_int(form, "min_upvotes", 0, 100_000, errors)
    cap = _int(form, "max_papers", 1, MAX_CAP, errors, DEFAULT_PREFERENCES.max_papers)
    trending = _trending(form, topics, errors)
    return Preferences(topics, frequency, hour, tz, weekly_day, min_upvotes, cap, trending)


def form_values(prefs: Preferences) -> dict[str, str]:
    """Preferences as the form's fields: the sign-up page's defaults, and what the API's bodies are
    checked as (every topic in the topic box)."""
    return {
        "topics": "\n".join(prefs.topics),
        "examples": "",
        "frequency": prefs.frequency.value,
        "send_hour": str(prefs.send_hour),
        "timezone": prefs.timezone,
        "weekly_day": str(prefs.weekly_day),
        "min_upvotes": "" if prefs.min_upvotes is None else str(prefs.min_upvotes),
        "max_papers": str(prefs.max_papers),
        "trending": "on" if prefs.trending is not None else "",
        "trending_count": str(prefs.trending or TRENDING_DEFAULT),
    }


def manage_values(prefs: Preferences) -> dict[str, str]:
    """A reader's preferences as the manage page shows them: the example papers' ids in their own
    box, the other topics in the topic box."""
    topics, examples = split_examples(prefs.topics)
    return {**form_values(prefs), "topics": "\n".join(topics), "examples": "\n".join(examples)}


def read_signup(form: Mapping[str, str], search: TitleSearch) -> FormResult:
    """The whole sign-up form."""
    errors: dict[str, str] = {}
    text, problems = _text_only(form)
    email = _email(text, errors)
    prefs = _read(text, errors, search)
    errors.update(problems)
    return FormResult(email, None if errors else prefs, errors)
