"""Rendering: matched papers in, a `RenderedDigest` (subject, HTML, text) out. Pure.

CSS is inlined by premailer once per template, when the template is loaded, not once per
email: Jinja syntax is swapped for inert placeholders, premailer inlines the stylesheet, the
placeholders are swapped back, and Jinja compiles the result. Only base.html's first <style> is
inlined (the few properties clients without <style> need); its second, `data-premailer="ignore"`,
is sent as it is in <head> (the rest, dark mode and the phone rules).
"""

from __future__ import annotations

import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import premailer
from jinja2 import (
    BaseLoader,
    Environment,
    FileSystemLoader,
    StrictUndefined,
    select_autoescape,
)
from markupsafe import Markup

from digest.latex import latex_to_text
from digest.match import Match
from digest.parse import arxiv_id
from digest.query import Like, QueryError, parse_query, positive_likes
from digest.query import label as query_label
from digest.text import clip, squash, word_spans

SNIPPET_CHARS = 300
REASON_CHARS = 80  # a card's reason: an OR alternative, or "close to your example <its title>"
EXAMPLE_REASON = "close to your example "  # how a card names a like:ID match (digest.semantic)
AUTHORS_SHOWN = 3
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.S)
_PLACEHOLDER = re.compile(r"JJX(\d+)XJJ")
_IMPORT = re.compile(r"@import", re.I)


@dataclass(frozen=True)
class Segment:
    """A run of text, highlighted when it is a matched word."""

    text: str
    hit: bool


@dataclass(frozen=True)
class PaperView:
    title: list[Segment]
    url: str
    pdf_url: str | None
    authors: str
    snippet: list[Segment]
    categories: list[str]
    upvotes: int | None
    topics: list[str]
    published: str
    # The shortened author line with the authors an `author:` topic named highlighted (and shown).
    author_line: list[Segment] = field(default_factory=list)
    hf_url: str | None = None  # the paper's Hugging Face page: discussion, models, datasets, Spaces

    @property
    def title_text(self) -> str:
        return "".join(s.text for s in self.title)

    @property
    def snippet_text(self) -> str:
        return "".join(s.text for s in self.snippet)

    @property
    def facts(self) -> str:
        """Categories and date, for the line under the snippet."""
        parts = [" ".join(self.categories[:4])] if self.categories else []
        return " · ".join([*parts, self.published] if self.published else parts)

    @property
    def meta(self) -> str:
        """The one-line facts: upvotes, categories, date."""
        return " · ".join(part for part in (f"▲ {self.upvotes}" if self.upvotes else "", self.facts) if part)


# A reader's feedback links for one card: (more like this, less like this), or None for none.
FeedbackLinks = Callable[[Match], tuple[str, str] | None]


@dataclass(frozen=True)
class DigestContext:
    """Everything about the reader and the day that the template needs besides the papers."""

    recipient: str
    topics: Sequence[str]
    date: datetime
    manage_url: str
    unsubscribe_url: str
    list_name: str
    base_url: str
    weekly: bool = False  # the digest covers a week: "this week", not "today"
    trending: int | None = None  # the reader's trending section size, if they have one
    feedback: FeedbackLinks | None = None  # signed per reader and paper, on each card's last line
    view_url: str = ""  # the digest's own page ("view in your browser"); none for a preview

    @property
    def period_word(self) -> str:
        """'today' or 'this week'."""
        return "this week" if self.weekly else "today"

    @property
    def trending_phrase(self) -> str:
        """'the 10 most upvoted papers on Hugging Face today', 'the most upvoted paper on … this week'."""
        return trending_phrase(self.trending or 0, self.period_word)


def trending_phrase(count: int, period_word: str) -> str:
    """What a trending section holds, in words: 'the 10 most upvoted papers on Hugging Face today'."""
    what = "the most upvoted paper" if count == 1 else f"the {count} most upvoted papers"
    return f"{what} on Hugging Face {period_word}"


@dataclass(frozen=True)
class RenderedDigest:
    """A composed email, before MIME: what every transport and test looks at."""

    subject: str
    html: str
    text: str
    # Pieces of `html` and `text` that many messages hold (the cards' bodies), in the order they
    # appear: a hint for the encoder, which encodes each once for every reader who gets it.
    shared_html: tuple[str, ...] = field(default=(), compare=False, repr=False)
    shared_text: tuple[str, ...] = field(default=(), compare=False, repr=False)


def safe_url(url: str | None) -> str | None:
    """Only http(s) links from feeds reach an href."""
    if url and url.strip().lower().startswith(("https://", "http://")) and not re.search(r"[\s<>\"']", url):
        return url.strip()
    return None


def hit_spans(text: str, phrases: frozenset[tuple[str, ...]]) -> list[tuple[int, int]]:
    """Character spans of the matched words and whole phrases in a text: scanning left to right,
    the longest phrase starting at a word wins and hits never overlap. One pass over the words,
    looking each up among the phrases' first words (no index of the text is built: most texts are
    scanned once or twice, for a card that is then cached)."""
    spans = word_spans(text)
    starting: dict[str, list[tuple[str, ...]]] = {}
    for phrase in phrases:
        starting.setdefault(phrase[0], []).append(phrase)
    found: list[tuple[int, int]] = []
    i, count = 0, len(spans)
    while i < count:
        longest = 0
        for phrase in starting.get(spans[i][2], ()):
            n = len(phrase)
            if n > longest and i + n <= count and all(spans[i + k][2] == phrase[k] for k in range(1, n)):
                longest = n
        if longest:
            found.append((spans[i][0], spans[i + longest - 1][1]))
            i += longest
        else:
            i += 1
    return found


def segments(text: str, phrases: frozenset[tuple[str, ...]]) -> list[Segment]:
    """Split text into plain and highlighted runs; adjacent hits share one highlight."""
    return _segments(text, hit_spans(text, phrases))


def _segments(text: str, hits: list[tuple[int, int]]) -> list[Segment]:
    out: list[Segment] = []
    pos = 0
    for start, end in hits:
        gap = text[pos:start]
        if out and out[-1].hit and gap.strip(" -") == "":
            out[-1] = Segment(out[-1].text + gap + text[start:end], True)
        else:
            if gap:
                out.append(Segment(gap, False))
            out.append(Segment(text[start:end], True))
        pos = end
    if pos < len(text):
        out.append(Segment(text[pos:], False))
    return out


def snippet(abstract: str, phrases: frozenset[tuple[str, ...]], limit: int = SNIPPET_CHARS) -> str:
    """About `limit` characters of the abstract, starting at the sentence of the first hit if late."""
    return _snippet(abstract, hit_spans(abstract, phrases), limit)[0]


def _snippet(abstract: str, hits: list[tuple[int, int]], limit: int) -> tuple[str, int, int]:
    """The snippet, where in the abstract the text it shows starts, and how long its prefix is."""
    first = hits[0][0] if hits else 0
    if first > limit - 80:
        sentence = max(abstract.rfind(". ", 0, first), abstract.rfind("? ", 0, first))
        start = sentence + 2 if sentence >= 0 else first
        return "…" + clip(abstract[start:], limit), start, 1
    return clip(abstract, limit), 0, 0


def snippet_segments(abstract: str, phrases: frozenset[tuple[str, ...]], limit: int = SNIPPET_CHARS) -> list[Segment]:
    """`segments(snippet(abstract, phrases), phrases)`, with the abstract's hits moved into the
    snippet instead of found again: the snippet shows the abstract from a word's start to a cut
    after a word (`clip`), so the hits wholly inside are its hits. Should a hit straddle either
    end, or the cut fall inside a word, the snippet is scanned on its own."""
    hits = hit_spans(abstract, phrases)
    text, start, prefix = _snippet(abstract, hits, limit)  # prefix: the "…" of a snippet that starts later
    body = text[prefix:]
    clipped = len(body) != len(abstract) - start
    end = start + len(body) - (1 if clipped else 0)  # the abstract's text the snippet shows: [start, end)
    if (clipped and _TWO_WORD_CHARS.fullmatch(abstract[end - 1 : end + 1])) or any(
        a < start < b or a < end < b for a, b in hits
    ):
        return segments(text, phrases)
    return _segments(text, [(a - start + prefix, b - start + prefix) for a, b in hits if start <= a and b <= end])


_TWO_WORD_CHARS = re.compile(r"[^\W_]{2}")  # a cut between these two characters is inside a word (text.WORD)


def wrap(text: str, width: int = 72, joiner: str = "\n   ") -> str:
    """Greedy word wrap for the plaintext part (textwrap is ten times slower, and this is all we need)."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return joiner.join(lines)


def short_authors(names: Sequence[str], shown: int = AUTHORS_SHOWN) -> str:
    """'A, B and C', or 'A, B, C and 9 others' for long lists."""
    return "".join(s.text for s in author_segments(names, frozenset(), shown))


def author_segments(names: Sequence[str], hits: frozenset[int], shown: int = AUTHORS_SHOWN) -> list[Segment]:
    """The author line as runs of text, the `hits` (positions in `names`) highlighted: 'A, B and C',
    or 'A, B, C and 9 others' for long lists — where an author a topic named is always shown
    ('A, B, C, LeCun and 8 others')."""
    if len(names) <= shown + 1:
        visible = list(range(len(names)))
    else:
        visible = sorted({*range(shown), *(i for i in hits if i < len(names))})
    hidden = len(names) - len(visible)
    out: list[Segment] = []
    for n, i in enumerate(visible):
        if n:
            last = n == len(visible) - 1 and not hidden
            out.append(Segment(" and " if last else ", ", False))
        out.append(Segment(names[i], i in hits))
    if hidden:
        out.append(Segment(f" and {hidden} other{'s' if hidden != 1 else ''}", False))
    return out


# An example paper's arXiv id → its title as readers see it (for `like:ID` topics).
Titles = Mapping[str, str]
_NO_TITLES: Titles = {}


@lru_cache(maxsize=100_000)
def topic_label(topic: str) -> str:
    """A short human name for a topic: `"KV cache" OR kv-cache -survey` reads as `KV cache`,
    `like:"context windows"` as `"context windows"`, `like:2406.12345` as `papers like 2406.12345`."""
    return titled_label(topic, _NO_TITLES)


def titled_label(topic: str, titles: Titles) -> str:
    """A topic's label, naming each example paper by its title when `titles` has it: `papers like <title>`."""
    try:
        text = query_label(parse_query(topic), like=lambda like: like_label(like, titles))
    except QueryError:
        text = topic
    return short_label(text) or short_label(topic)


def label_for(topic: str, titles: Titles) -> str:
    """`titled_label`, from the cache when no example paper needs naming."""
    return titled_label(topic, titles) if titles else topic_label(topic)


def like_label(like: Like, titles: Titles) -> str:
    """How a label names a `like:` term: '"context windows"', 'papers like <title or id>'."""
    if like.kind == "text":
        return f'"{like.value}"'
    return f"papers like {titles.get(like.value, like.value)}"


def short_label(text: str) -> str:
    """A label as cards and subjects show it: one line, at most 40 characters."""
    return clip(squash(text), 40)


@lru_cache(maxsize=10_000)
def lone_example(topic: str) -> str | None:
    """The arXiv id of a topic that is one example paper and nothing else (`like:2406.12345`,
    exclusions aside) — what "Papers you liked" makes — or None."""
    try:
        tree = parse_query(topic)
    except QueryError:
        return None
    likes = positive_likes(tree)
    alone = len(likes) == 1 and likes[0].kind == "paper" and query_label(tree, like=lambda _like: "") == ""
    return likes[0].value if alone else None


def example_titles(matches: Sequence[Match]) -> dict[str, str]:
    """The titles of the reader's example papers, read from the cards' reasons: a paper a lone
    `like:ID` topic brought says 'close to your example <title>' (match knows the titles, render
    only the matches)."""
    found: dict[str, str] = {}
    for match in matches:
        for topic, reason in zip(match.topics, match.reasons, strict=False):
            example = lone_example(topic)
            title = reason.removeprefix(EXAMPLE_REASON) if reason.startswith(EXAMPLE_REASON) else ""
            if example and title and title != example:
                found[example] = latex_to_text(title)
    return found


def subject_line(
    count: int, topics: Sequence[str], date: datetime, limit: int = 60, titles: Titles = _NO_TITLES
) -> str:
    """'7 new papers on long context, KV cache — 29 Nov' (topic labels cut to fit)."""
    noun = "paper" if count == 1 else "papers"
    labels: list[str] = []
    for label in dict.fromkeys(label_for(t, titles) for t in topics):
        if labels and len(", ".join([*labels, label])) > limit:
            labels.append("…")
            break
        labels.append(label)
    on = f" on {', '.join(labels)}" if labels else ""
    return squash(f"{count} new {noun}{on} — {date.day} {date:%b}")


def subject_topics(topics: Sequence[str], matches: Sequence[Match]) -> list[str]:
    """The reader's topics that matched, the one with most papers first, then in the reader's order."""
    counts = Counter(t for m in matches for t in m.topics)
    order = {t: i for i, t in enumerate(topics)}
    return sorted(counts, key=lambda t: (-counts[t], order.get(t, len(order)))) or list(topics)


class Card(NamedTuple):
    """One paper as the email shows it: its view, its HTML and text body (rendered once, shared by
    every reader who gets the paper with the same highlights), and which of this reader's topics
    it matched (the card's last line, rendered per reader). A NamedTuple: two are made per card of
    every digest, and a frozen dataclass takes five times as long to build."""

    view: PaperView
    html: Markup
    text: str
    topics: tuple[str, ...] = ()
    why: str = ""  # the card's last line, this reader's own: why the paper is in their digest
    more_url: str = ""  # this reader's "More like this" link on the last line (none without feedback)
    less_url: str = ""


_CARDS: OrderedDict[tuple[object, ...], Card] = OrderedDict()
_CARDS_MAX = 50_000


def paper_view(match: Match) -> PaperView:
    """What the template shows for one paper."""
    return _build_view(match)


def paper_card(folder: Path, match: Match) -> Card:
    """A paper's card. The body is cached: many readers get the same paper with the same
    highlights, so its HTML and text are rendered once and reused across their digests."""
    paper = match.paper
    key = (folder, paper.id, paper.title, paper.abstract, paper.upvotes, match.highlight, match.authors_hit)
    body = _CARDS.get(key)
    if body is None:
        view = _build_view(match, with_topics=False)
        env = environment(folder)
        html = Markup(env.get_template("_card.html").render(p=view))
        text = env.get_template("_card.txt").render(p=view)  # ends with its last line's newline
        body = Card(view, html, text)
        _CARDS[key] = body
        if len(_CARDS) > _CARDS_MAX:
            _CARDS.popitem(last=False)
    labels = reasons(match)
    return Card(body.view, body.html, body.text, labels, matched_why(labels))


def matched_why(labels: Sequence[str]) -> str:
    """'Matched: KV cache, long context' — a topical card's last line."""
    return f"Matched: {', '.join(labels)}" if labels else ""


def trending_why(match: Match, labels: Sequence[str], period_word: str = "") -> str:
    """'#3 today · 120 upvotes', and the reader's topics the paper also matched — a trending card's
    last line (the sign-up preview, covering a week, leaves the period word out)."""
    count = match.paper.upvotes or 0
    why = f"#{match.rank}{' ' + period_word if period_word else ''} · {count} upvote{'s' if count != 1 else ''}"
    if labels:
        why += f" · also on your topic{'s' if len(labels) > 1 else ''} {', '.join(labels)}"
    return why


def reasons(match: Match) -> tuple[str, ...]:
    """What of each of the reader's topics matched the paper, as the card says it."""
    if match.recommended:  # no topic matched it: its reason is the reader's votes
        return ()
    return _labels(match.reasons, match.topics)


@lru_cache(maxsize=100_000)
def _labels(said: tuple[str, ...], topics: tuple[str, ...]) -> tuple[str, ...]:
    """The card's words for each matched topic: what of it matched, else its label (once per
    pair: every reader with these topics on this paper has the same)."""
    if said:
        pairs = zip(said, topics, strict=True)
        return tuple(dict.fromkeys(clip(squash(latex_to_text(r)), REASON_CHARS) or topic_label(t) for r, t in pairs))
    return tuple(topic_label(t) for t in topics)


def trending_card(folder: Path, match: Match, period_word: str) -> Card:
    """A trending paper's card: '#3 today · 120 upvotes', and the reader's topics it also matched."""
    card = paper_card(folder, match)
    return Card(card.view, card.html, card.text, card.topics, trending_why(match, card.topics, period_word))


def with_feedback(card: Card, match: Match, context: DigestContext) -> Card:
    """The card with this reader's "More like this" / "Less like this" links, when the digest has them."""
    urls = context.feedback(match) if context.feedback else None
    if urls is None:
        return card
    # Built directly, not with _replace: a digest makes one per card, and _replace goes through a
    # dict of the fields (several times the constructor).
    return Card(card.view, card.html, card.text, card.topics, card.why, urls[0], urls[1])


def _build_view(match: Match, *, with_topics: bool = True) -> PaperView:
    """The paper as readers see it: LaTeX in its title, abstract and authors read as text."""
    paper = match.paper
    phrases = match.highlight
    line = author_segments([latex_to_text(name) for name in paper.authors], match.authors_hit)
    return PaperView(
        title=segments(latex_to_text(paper.title), phrases),
        url=safe_url(getattr(paper, "abs_url", None)) or "",
        pdf_url=safe_url(getattr(paper, "pdf_url", None)),
        authors="".join(s.text for s in line),
        snippet=snippet_segments(latex_to_text(paper.abstract), phrases),
        categories=list(paper.categories),
        upvotes=paper.upvotes,
        topics=list(reasons(match)) if with_topics else [],
        published=f"{paper.published:%d %b %Y}" if paper.published else "",
        author_line=line,
        hf_url=hf_page(paper),
    )


def hf_page(paper: Any) -> str | None:
    """The paper's page on Hugging Face, when Hugging Face announced it (its id is arXiv's)."""
    if getattr(paper, "on_hf", False) and arxiv_id(paper.id) == paper.id:
        return f"https://huggingface.co/papers/{paper.id}"
    return None


def _protect(source: str) -> tuple[str, list[str]]:
    saved: list[str] = []

    def stash(m: re.Match[str]) -> str:
        saved.append(m.group())
        return f"JJX{len(saved) - 1}XJJ"

    return _JINJA.sub(stash, source), saved


class TemplateShapeError(ValueError):
    """An email template uses inheritance in a way the CSS inliner cannot flatten."""


def inline_css(source: str) -> str:
    """Inline a Jinja HTML template's <style> rules into style attributes (no network access).

    premailer's `allow_network=False` covers <link> stylesheets, but cssutils would still fetch an
    `@import`: templates with one are refused outright."""
    if _IMPORT.search(source):
        raise TemplateShapeError("email templates may not @import CSS (it would be fetched): inline it")
    protected, saved = _protect(source)
    inlined = premailer.Premailer(
        protected,
        allow_network=False,
        allow_loading_external_files=False,
        disable_link_rewrites=True,
        disable_validation=True,
        strip_important=False,  # the @media rules left in <style> must still beat inline styles
        disable_basic_attributes=["bgcolor", "align", "width", "height"],  # keep the mail small
        cssutils_logging_level="CRITICAL",
    ).transform()
    if source.lstrip().lower().startswith("<!doctype") and not inlined.lower().startswith("<!doctype"):
        inlined = "<!doctype html>\n" + inlined
    return _PLACEHOLDER.sub(lambda m: saved[int(m.group(1))], _compact_styles(inlined))


_STYLE_ATTR = re.compile(r'style="([^"]*)"')


def _compact_styles(html: str) -> str:
    """`a:1; b:2` as `a:1;b:2` in style attributes: a byte per declaration on every card."""
    return _STYLE_ATTR.sub(lambda m: 'style="' + m.group(1).replace("; ", ";") + '"', html)


_STYLE = re.compile(r"<style>(.*?)</style>", re.S | re.I)  # the inlined sheet, not `data-premailer="ignore"`
_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.S | re.I)


def _stylesheet(source: str) -> str:
    return "\n".join(_STYLE.findall(source))


def inline_fragment(source: str, css: str) -> str:
    """Inline `css` into a template fragment (a partial with no <head> of its own)."""
    document = f"<!doctype html><html><head><style>{css}</style></head><body>{source}</body></html>"
    found = _BODY.search(inline_css(document))
    if found is None:
        raise TemplateShapeError("the fragment did not survive CSS inlining")
    return found.group(1).strip("\n") + "\n"


_EXTENDS = re.compile(r"^\s*\{%-?\s*extends\s+[\"']([^\"']+)[\"']\s*-?%\}")
_BLOCK = re.compile(r"\{%-?\s*block\s+(\w+)\s*-?%\}(.*?)\{%-?\s*endblock(?:\s+\w+)?\s*-?%\}", re.S)


def flatten(source: str, load: Callable[[str], str]) -> str:
    """Resolve one level of `{% extends %}` by text: the child's blocks replace the parent's.

    premailer needs the whole document (with its <style>) at once, so email templates are
    flattened before inlining; blocks must not nest and `super()` is not supported."""
    found = _EXTENDS.match(source)
    if not found:
        return source
    parent = load(found.group(1))
    blocks: dict[str, str] = {name: body for name, body in _BLOCK.findall(source)}
    unknown = set(blocks) - {name for name, _body in _BLOCK.findall(parent)}
    if unknown:
        raise TemplateShapeError(f"blocks not in {found.group(1)}: {', '.join(sorted(unknown))}")
    return _BLOCK.sub(lambda m: blocks.get(m.group(1), str(m.group(2))), parent)


class InlinedCssLoader(BaseLoader):
    """Loads templates from a folder; HTML email templates are flattened and get their CSS inlined
    once, at load time, so rendering each email is plain Jinja."""

    def __init__(self, folder: Path) -> None:
        self.files = FileSystemLoader(str(folder))

    def get_source(self, environment: Environment, template: str) -> tuple[str, str | None, Callable[[], bool] | None]:
        source, filename, uptodate = self.files.get_source(environment, template)
        if template.endswith(".html") and "{# premailer: off #}" not in source:

            def load(name: str) -> str:
                return str(self.files.get_source(environment, name)[0])

            if template.rpartition("/")[2].startswith("_"):  # a fragment: styled by base.html's CSS
                source = inline_fragment(source, _stylesheet(load("base.html")))
            else:
                source = inline_css(flatten(source, load))
        return source, filename, uptodate


@lru_cache(maxsize=8)
def environment(folder: Path) -> Environment:
    """The Jinja environment: autoescape on for .html (and anything unknown), off for .txt."""
    env = Environment(
        loader=InlinedCssLoader(folder),
        autoescape=select_autoescape(enabled_extensions=("html", "xml"), disabled_extensions=("txt",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    env.filters["wrap"] = wrap
    if folder.joinpath("digest.html").exists():
        env.get_template("digest.html")  # compile once, up front
    return env


def render_pair(
    folder: Path, name: str, subject: str, values: dict[str, object], cards: Sequence[Card] = ()
) -> RenderedDigest:
    """Render `<name>.html` and `<name>.txt` with the same values (`cards`: those they show, in order)."""
    env = environment(folder)
    values = {"subject": subject, **values}
    html = env.get_template(f"{name}.html").render(values)
    text = env.get_template(f"{name}.txt").render(values)
    shared_html, shared_text = tuple(c.html for c in cards), tuple(c.text for c in cards)
    return RenderedDigest(squash(subject), html, text, shared_html, shared_text)


def render_digest(folder: Path, context: DigestContext, matches: Sequence[Match], more: int) -> RenderedDigest:
    """Render the subject, HTML and plaintext of one reader's digest: the trending papers (those
    with a rank) in their own section, then the papers on the reader's topics."""
    hot = [m for m in matches if m.rank is not None]
    trending = [with_feedback(trending_card(folder, m, context.period_word), m, context) for m in hot]
    topical = [m for m in matches if m.rank is None and not m.recommended]
    cards = [with_feedback(paper_card(folder, m), m, context) for m in topical]
    liked = [with_feedback(recommended_card(folder, m), m, context) for m in matches if m.recommended]
    titles = example_titles(topical)
    values: dict[str, object] = {
        "trending": trending,
        "cards": cards,
        "recommended": liked,
        "more": more,
        "ctx": context,
        "topics": [label_for(t, titles) for t in context.topics],
        "date_label": f"{context.date:%A} {context.date.day} {context.date:%B %Y}",
        "summary": summary(context, trending, cards, more),
        "lead": next(iter([*cards, *trending]), None),
    }
    subject = digest_subject(context, len(trending), topical, more, titles)
    return render_pair(folder, "digest", subject, values, [*trending, *cards, *liked])


def recommended_card(folder: Path, match: Match) -> Card:
    """A paper the reader's votes brought: its reason is 'like <title>, which you liked'."""
    card = paper_card(folder, match)
    return card._replace(topics=(), why=squash(latex_to_text(match.reasons[0])) if match.reasons else "")


def digest_subject(
    context: DigestContext, trending: int, topical: Sequence[Match], more: int, titles: Titles = _NO_TITLES
) -> str:
    """'7 new papers on KV cache — 29 Nov', '10 trending papers today — 29 Nov', or
    '7 new papers on KV cache + 10 trending — 29 Nov' (an example paper named by its title)."""
    when = f"{context.date.day} {context.date:%b}"
    hot = f"{trending} trending paper{'s' if trending != 1 else ''} {context.period_word}"
    if not topical and not more:
        return f"{hot} — {when}"
    subject = subject_line(len(topical) + more, subject_topics(context.topics, topical), context.date, titles=titles)
    return subject.replace(" — ", f" + {trending} trending — ", 1) if trending else subject


def summary(context: DigestContext, trending: Sequence[Card], cards: Sequence[Card], more: int) -> str:
    """The first visible line (what inboxes show as the preview)."""
    count = len(cards) + more
    parts = []
    if cards or more:
        parts.append(f"{count} paper{'s' if count != 1 else ''} matched your topics")
    if trending:
        most = "the most upvoted paper" if len(trending) == 1 else f"the {len(trending)} most upvoted"
        parts.append(f"{most} on Hugging Face {context.period_word}")
    line = ", and ".join(parts)
    return line[:1].upper() + line[1:]
