"""Rendering: golden files for what readers see, escaping of feed text, and the helpers behind it."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from digest.config import PROJECT_ROOT
from digest.latex import latex_to_text
from digest.match import Match, PaperIndex, pick, select
from digest.models import Preferences
from digest.render import (
    DigestContext,
    author_segments,
    environment,
    render_digest,
    safe_url,
    segments,
    short_authors,
    snippet,
    snippet_segments,
    subject_line,
    topic_label,
)
from digest.text import word_spans
from tests.conftest import GOLDEN

TEMPLATES = PROJECT_ROOT / "email_templates"
SEEN = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)


@dataclass
class P:
    id: str
    title: str
    abstract: str
    authors: list[str]
    categories: list[str]
    published: datetime | None
    upvotes: int | None
    first_seen: datetime
    abs_url: str
    pdf_url: str | None
    upvote_history: list[list[int]] = field(default_factory=list)
    on_hf: bool = False


def _paper(n: int, title: str, abstract: str, **extra: object) -> P:
    values: dict[str, object] = {
        "id": f"2611.0000{n}",
        "title": title,
        "abstract": abstract,
        "authors": ["Ada Lovelace", "Alan Turing"],
        "categories": ["cs.CL", "cs.LG"],
        "published": datetime(2026, 11, 27, 18, 0, tzinfo=UTC),
        "upvotes": None,
        "first_seen": SEEN,
        "abs_url": f"https://arxiv.org/abs/2611.0000{n}",
        "pdf_url": f"https://arxiv.org/pdf/2611.0000{n}",
    }
    values.update(extra)
    return P(**values)  # type: ignore[arg-type]


PAPERS = [
    _paper(
        1,
        "Efficient KV-Cache Compression for Long-Context Inference",
        "Large language models with long context windows store keys and values for every token. "
        "We compress the KV cache by clustering, cutting memory by 6x with no loss on RULER.",
        upvotes=42,
        authors=["Wei Zhang", "Ana Silva", "Omar Haddad", "Lena Müller", "Ravi Iyer", "Sofia Rossi"],
    ),
    _paper(
        2,
        "<script>alert('x')</script> Agents & Tools",
        "An agent that uses tools. <img src=x onerror=alert(1)> The long context matters here.",
        abs_url="javascript:alert(1)",
        pdf_url=None,
        categories=["cs.AI"],
    ),
    _paper(3, "Protein folding", "Nothing relevant.", first_seen=SEEN),
]
TOPICS = ['"KV cache" OR kv-cache', '"long context" -survey']
CONTEXT = DigestContext(
    recipient="ada@example.org",
    topics=TOPICS,
    date=datetime(2026, 11, 30, 8, 0, tzinfo=UTC),
    manage_url="https://digest.example.org/manage/TOKEN-M",
    unsubscribe_url="https://digest.example.org/unsubscribe/TOKEN-U",
    list_name="Paper Digest",
    base_url="https://digest.example.org",
)


def _rendered() -> tuple[str, str, str]:
    index = PaperIndex(PAPERS)
    chosen = select(index, TOPICS, candidates=index.all, cap=25)
    out = render_digest(TEMPLATES, CONTEXT, chosen.matches, more=3)
    return out.subject, out.html, out.text


def _golden(name: str, actual: str, regen: bool) -> None:
    path: Path = GOLDEN / name
    if regen or not path.exists():
        existed = path.exists()
        path.write_text(actual, encoding="utf-8")
        assert regen or existed, f"{name} did not exist and was written; review it and commit it"
    assert actual == path.read_text(encoding="utf-8"), f"{name} changed; rerun with --regen-golden if intended"


def test_html_matches_golden(regen_golden: bool) -> None:
    _golden("digest.html", _rendered()[1], regen_golden)


def test_text_matches_golden(regen_golden: bool) -> None:
    _golden("digest.txt", _rendered()[2], regen_golden)


class _Text(HTMLParser):
    """The visible text of a page, in order, and the inline styles it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self.styles: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skip += tag in ("style", "title", "head")
        self.styles += [value or "" for name, value in attrs if name == "style"]

    def handle_endtag(self, tag: str) -> None:
        self.skip -= tag in ("style", "title", "head")

    def handle_data(self, data: str) -> None:
        if not self.skip and data.strip():
            self.texts.append(data.strip())


def test_no_hidden_text_and_the_preview_is_the_first_visible_line() -> None:
    _subject, html, _text = _rendered()
    page = _Text()
    page.feed(html)
    hidden = re.compile(r"display:\s*none|max-height:\s*0|font-size:\s*[01]px|opacity:\s*0|visibility:\s*hidden")
    assert [style for style in page.styles if hidden.search(style)] == []
    assert "display: none" not in html and "display:none" not in html
    # What the inbox shows as the preview: the count, as in the subject, and the first title.
    assert page.texts[0] == "5 papers matched your topics: Efficient KV-Cache Compression for Long-Context Inference"


def test_subject_counts_papers_including_those_cut() -> None:
    assert _rendered()[0] == "5 new papers on long context, KV cache — 30 Nov"


def test_feed_text_is_escaped_never_markup() -> None:
    _subject, html, text = _rendered()
    assert "<script" not in html and "<img" not in html and "onerror" not in html.replace("onerror=alert", "")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Agents &amp; Tools" in html
    assert 'href="javascript:' not in html
    assert "<script>alert('x')</script> Agents & Tools" in text  # plain text stays literal


def test_css_is_inlined_and_media_queries_kept() -> None:
    html = _rendered()[1]
    assert '<div class="card" style="' in html
    assert "@media only screen and (max-width: 480px)" in html
    assert "!important" in html  # so the phone rules still beat the inline styles
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in html
    assert html.lower().startswith("<!doctype html>")


def _rules(css: str) -> dict[str, set[str]]:
    """The properties each selector sets, outside @media blocks."""
    plain = re.sub(r"/\*.*?\*/", "", css, flags=re.S).split("@media")[0]
    found: dict[str, set[str]] = {}
    for selector, body in re.findall(r"([^{}]+)\{([^}]*)\}", plain):
        found.setdefault(selector.strip(), set()).update(d.split(":")[0].strip() for d in body.split(";") if d.strip())
    return found


def test_the_stylesheet_stays_in_the_head_with_dark_mode_and_no_property_is_sent_twice() -> None:
    html = _rendered()[1]
    head = html.split("</head>")[0]
    assert head.count("<style") == 1  # the inlined sheet is gone, the other is sent as written
    assert "@media (prefers-color-scheme: dark)" in head and ".card { background-color: #1f2937 !important;" in head
    inlined, kept = re.findall(r"<style[^>]*>(.*?)</style>", (TEMPLATES / "base.html").read_text(), re.S)
    assert kept.strip() in head
    inline_rules, kept_rules = _rules(inlined), _rules(kept)
    assert {s: p & inline_rules.get(s, set()) for s, p in kept_rules.items() if p & inline_rules.get(s, set())} == {}
    assert 'style="background:#fff;border:1px solid #e5e7eb;padding:16px 18px;margin:0 0 12px 0"' in html


def test_highlights_and_reasons_are_shown() -> None:
    html = _rendered()[1]
    assert "<mark>KV-Cache</mark>" in html and "<mark>Long-Context</mark>" in html
    assert "Matched: KV cache, long context" in html
    assert "3 more papers matched your topics" in html


def test_footer_links() -> None:
    _subject, html, text = _rendered()
    for url in (CONTEXT.manage_url, CONTEXT.unsubscribe_url):
        assert f'href="{url}"' in html and url in text


@pytest.mark.parametrize(
    ("name", "escaped"),
    [("digest.html", True), ("digest.txt", False), ("other.html", True), ("unknown.j2", True)],
)
def test_autoescape_applies_by_file_name(name: str, escaped: bool) -> None:
    env = environment(TEMPLATES)
    assert callable(env.autoescape)
    assert env.autoescape(name) is escaped


@pytest.mark.parametrize(
    ("count", "topics", "expected"),
    [
        (1, ["agents"], "1 new paper on agents — 30 Nov"),
        (7, ['"long context"', "KV cache"], "7 new papers on long context, KV cache — 30 Nov"),
        (3, ["a" * 30, "b" * 30, "c"], f"3 new papers on {'a' * 30}, … — 30 Nov"),
        (2, ["bad\r\nBcc: evil@example.org"], "2 new papers on bad Bcc: evil@example.org — 30 Nov"),
    ],
)
def test_subject_line(count: int, topics: list[str], expected: str) -> None:
    subject = subject_line(count, topics, datetime(2026, 11, 30, tzinfo=UTC))
    assert subject == expected
    assert "\r" not in subject and "\n" not in subject


@pytest.mark.parametrize(
    ("topic", "label"),
    [
        ('"KV cache" OR kv-cache -survey', "KV cache"),
        ("title:agent AND planning", "agent planning"),
        ("cat:cs.CL retrieval", "cs.CL retrieval"),
        ("(a OR b) c", "a c"),
        ('like:"context window extension"', '"context window extension"'),
        ("like:2503.18893", "papers like 2503.18893"),
        ("like:2503.18893 -survey", "papers like 2503.18893"),
        ("agents like:2503.18893", "agents papers like 2503.18893"),
    ],
)
def test_topic_label(topic: str, label: str) -> None:
    assert topic_label(topic) == label


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["A"], "A"),
        (["A", "B"], "A and B"),
        (["A", "B", "C", "D"], "A, B, C and D"),
        (["A", "B", "C", "D", "E"], "A, B, C and 2 others"),
        ([], ""),
    ],
)
def test_short_authors(names: list[str], expected: str) -> None:
    assert short_authors(names) == expected


def test_snippet_starts_at_the_sentence_of_a_late_hit() -> None:
    abstract = "Filler sentence number one goes on. " * 12 + "Here the transformer appears. More text follows."
    out = snippet(abstract, frozenset({("transformer",)}))
    assert out.startswith("…Here the transformer appears.")


def test_the_snippets_highlights_are_the_abstracts_moved_into_it() -> None:
    """A card's snippet is highlighted from the abstract's hits (not scanned again): on real
    abstracts, with phrases drawn from their own words and snippets of several lengths, exactly what
    scanning the snippet gives — hits at the cut, a hit straddling the sentence it starts at, a cut
    inside a word and snippets that start with "…" included."""
    rng = random.Random(15)
    lines = (PROJECT_ROOT / "bench" / "eval" / "papers.jsonl").read_text().splitlines()
    abstracts = [json.loads(line)["abstract"] for line in lines[:150]]
    abstracts += ["x" * 400, "a" * 200 + " context " + "b" * 250, "ends. Next context here. " * 30]
    for abstract in abstracts:
        words = [w for _s, _e, w in word_spans(abstract)] or ["x"]
        for _ in range(4):
            starts = [rng.randrange(len(words)) for _ in range(rng.randint(1, 4))]
            phrases = frozenset(tuple(words[i : i + rng.randint(1, 3)]) for i in starts)
            for limit in (300, 120, 40):
                expected = segments(snippet(abstract, phrases, limit), phrases)
                assert snippet_segments(abstract, phrases, limit) == expected, (abstract[:60], phrases, limit)


def test_segments_highlight_whole_phrases_only() -> None:
    phrases = frozenset({("long", "context")})
    parts = segments("A long road; long-context models in context.", phrases)
    assert [(p.text, p.hit) for p in parts] == [
        ("A long road; ", False),
        ("long-context", True),
        (" models in context.", False),
    ]


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://arxiv.org/abs/1", "https://arxiv.org/abs/1"),
        ("http://example.org/x", "http://example.org/x"),
        ("javascript:alert(1)", None),
        ("data:text/html,hi", None),
        ('https://x.org/"onmouseover="a', None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url(url: str | None, safe: str | None) -> None:
    assert safe_url(url) == safe


def test_a_phrase_cut_off_by_the_end_of_the_text_is_not_a_hit() -> None:
    # "diffusion models" starts at the last word; "diffusion" alone is also a topic's word.
    phrases = frozenset({("diffusion",), ("diffusion", "model")})
    parts = segments("Guidance for diffusion", phrases)
    assert [(p.text, p.hit) for p in parts] == [("Guidance for ", False), ("diffusion", True)]
    parts = segments("Diffusion models", phrases)
    assert [(p.text, p.hit) for p in parts] == [("Diffusion models", True)]


def test_readers_share_a_card_body_but_each_sees_their_own_topics_and_highlights() -> None:
    """A card's body is rendered once per (paper, highlights that occur in it): a reader whose extra
    topic words never occur in the paper shares it; the "Matched:" line is still each reader's own,
    and a reader whose topic highlights different words gets a different body."""
    from digest.render import paper_card

    index = PaperIndex(PAPERS)
    only = select(index, ['"KV cache"'], candidates=index.all, cap=5).matches[0]
    extra = select(index, ['"KV cache" OR "speculative decoding"'], candidates=index.all, cap=5)
    other = select(index, ["clustering"], candidates=index.all, cap=5).matches[0]
    assert only.paper.id == extra.matches[0].paper.id == other.paper.id == "2611.00001"

    a, b, c = paper_card(TEMPLATES, only), paper_card(TEMPLATES, extra.matches[0]), paper_card(TEMPLATES, other)
    assert a.html is b.html and a.text is b.text  # the same body, rendered once
    assert (a.topics, b.topics) == (("KV cache",), ("KV cache",))
    assert c.html is not a.html and c.topics == ("clustering",)
    assert "<mark>clustering</mark>" in c.html
    assert "<mark>clustering</mark>" not in a.html and "<mark>KV cache</mark>" in a.html

    ctx = DigestContext(
        recipient="ada@example.org", topics=["clustering"], date=SEEN, manage_url="https://x/m",
        unsubscribe_url="https://x/u", list_name="Paper Digest", base_url="https://x",
    )  # fmt: skip
    rendered = render_digest(TEMPLATES, ctx, [other], 0)
    assert "Matched: clustering" in rendered.text and ">Matched: clustering</p>" in rendered.html
    assert "Matched: KV cache" not in rendered.text


# --- trending and two-section digests ---------------------------------------------------------

HOT = [
    _paper(4, "Agents that plan with long context", "Planning agents read long context.", upvotes=212, on_hf=True),
    _paper(5, "Protein language models", "Proteins as text.", upvotes=180, on_hf=True,
           authors=["Mia Wong", "Tom Berg", "Ivy Cole", "Raj Patel", "Yann LeCun", "Eve Stone"]),
    _paper(6, "Diffusion for video", "Video diffusion at scale.", upvotes=97, on_hf=True),
]  # fmt: skip


def _two_kinds(topics: list[str], trending: int) -> tuple[str, str, str]:
    index = PaperIndex([*PAPERS, *HOT])
    ctx = replace(CONTEXT, topics=topics, trending=trending)
    picked = pick(
        index, Preferences(topics, trending=trending), SEEN, SEEN + timedelta(days=1), lookback=timedelta(days=7)
    )
    out = render_digest(TEMPLATES, ctx, picked.matches, more=picked.topical.more)
    return out.subject, out.html, out.text


@pytest.mark.parametrize(("name", "topics"), [("trending", []), ("two-sections", [*TOPICS, "author:LeCun"])])
def test_trending_digests_match_golden(name: str, topics: list[str], regen_golden: bool) -> None:
    subject, html, text = _two_kinds(topics, 2)
    _golden(f"digest-{name}.html", html, regen_golden)
    _golden(f"digest-{name}.txt", text, regen_golden)
    if not topics:
        assert subject == "2 trending papers today — 30 Nov"
        assert "Your topics" not in text and "TRENDING" not in text  # one kind: no section headings
    else:
        assert subject.startswith("2 new papers on ") and subject.endswith(" + 2 trending — 30 Nov")
        assert text.index("TRENDING") < text.index("ON YOUR TOPICS")


def test_an_author_named_by_a_topic_is_shown_and_highlighted_even_in_a_long_list() -> None:
    _subject, html, text = _two_kinds(["author:LeCun"], 0)
    assert "Mia Wong, Tom Berg, Ivy Cole, Yann LeCun and 2 others" in text
    assert "<mark>Yann LeCun</mark> and 2 others" in html


@pytest.mark.parametrize(
    ("names", "hits", "expected"),
    [
        (["A", "B", "C", "D", "E"], {4}, "A, B, C, E and 1 other"),
        (["A", "B", "C", "D", "E", "F"], {1}, "A, B, C and 3 others"),  # already shown
        (["A", "B", "C", "D"], {3}, "A, B, C and D"),
        (["A", "B", "C", "D", "E", "F", "G"], {4, 6}, "A, B, C, E, G and 2 others"),
    ],
)
def test_author_line_keeps_the_matched_authors(names: list[str], hits: set[int], expected: str) -> None:
    line = author_segments(names, frozenset(hits))
    assert "".join(s.text for s in line) == expected
    assert {s.text for s in line if s.hit} == {names[i] for i in hits}


def test_a_weekly_digest_says_this_week() -> None:
    index = PaperIndex(HOT)
    picked = pick(index, Preferences([], trending=1), SEEN, SEEN + timedelta(days=7), lookback=timedelta(days=7))
    out = render_digest(TEMPLATES, replace(CONTEXT, topics=[], trending=1, weekly=True), picked.matches, 0)
    assert out.subject == "1 trending paper this week — 30 Nov"
    assert "#1 this week · 212 upvotes" in out.text and "Hugging Face this week" in out.text


# --- what a reader notices: counts, periods, example papers by their titles ----------------------

_ONE_PAPERS = re.compile(r"(?<![\d.,])1 (papers|upvotes|others|topics)\b|\bthe 1 most\b")


def _digest(topics: list[str], trending: int, cap: int, *, weekly: bool = False) -> tuple[str, str, str]:
    index = PaperIndex([*PAPERS, *HOT])
    prefs = Preferences(topics, trending=trending or None, max_papers=cap)
    picked = pick(index, prefs, SEEN, SEEN + timedelta(days=7 if weekly else 1), lookback=timedelta(days=7))
    ctx = replace(CONTEXT, topics=topics, trending=trending or None, weekly=weekly)
    out = render_digest(TEMPLATES, ctx, picked.matches, more=picked.topical.more)
    return out.subject, out.html, out.text


@pytest.mark.parametrize(
    ("topics", "trending", "cap", "subject", "preview"),
    [
        (["clustering"], 0, 25, "1 new paper on clustering — 30 Nov", "1 paper matched your topics"),
        ([], 1, 25, "1 trending paper today — 30 Nov", "The most upvoted paper on Hugging Face today"),
        (
            ["clustering"], 1, 25, "1 new paper on clustering + 1 trending — 30 Nov",
            "1 paper matched your topics, and the most upvoted paper on Hugging Face today",
        ),
        (["tools"], 0, 1, "1 new paper on tools — 30 Nov", "1 paper matched your topics"),
    ],
)  # fmt: skip
def test_one_paper_is_one_paper_everywhere(
    topics: list[str], trending: int, cap: int, subject: str, preview: str
) -> None:
    """ "1 paper", never "1 papers": in the subject, the preview line (the first visible line) and
    both parts — the trending line, the reasons, the "more" line."""
    got_subject, html, text = _digest(topics, trending, cap)
    assert got_subject == subject
    page = _Text()
    page.feed(html)
    assert page.texts[0].startswith(preview)
    for part in (got_subject, text):
        assert not _ONE_PAPERS.search(part), _ONE_PAPERS.search(part)
    if trending:
        assert "Trending: the most upvoted paper on Hugging Face today" in text


def test_one_trending_paper_is_one_paper_in_the_html_heading_too() -> None:
    _subject, html, _text = _digest([], 1, 25)
    assert "Trending: the most upvoted paper on Hugging Face today" in html
    assert not _ONE_PAPERS.search(html), _ONE_PAPERS.search(html)


def test_one_more_paper_that_did_not_fit_is_one_paper() -> None:
    _subject, html, text = _digest(["agents OR tools OR context"], 0, 2)
    assert "1 more paper matched your topics" in text and "1 more paper matched your topics" in html
    assert not _ONE_PAPERS.search(text) and not _ONE_PAPERS.search(html)


def test_a_weekly_digest_never_says_today() -> None:
    """Subject, headings, the preview line, trending reasons and the "more" line all say "this week"."""
    subject, html, text = _digest([*TOPICS, "agents"], 2, 1, weekly=True)
    assert subject.endswith("+ 2 trending — 30 Nov")
    for part in (subject, html, text):
        assert "today" not in part.lower()
    assert "#1 this week · 212 upvotes" in text and "#1 this week · 212 upvotes" in html
    assert "Trending: the 2 most upvoted papers on Hugging Face this week" in text
    assert "the 2 most upvoted on Hugging Face this week" in html  # the preview line
    trending_only = _digest([], 1, 25, weekly=True)
    assert trending_only[0] == "1 trending paper this week — 30 Nov"
    assert all("today" not in part.lower() for part in trending_only)


EXAMPLE = "2503.18893"


def _liked(reason: str, topics: tuple[str, ...] = (f"like:{EXAMPLE}",)) -> list[Match]:
    """A paper a like:ID topic brought, as match.py hands it over: its reason names the example."""
    return [Match(PAPERS[0], topics, 1, 0, reasons=(reason,) * len(topics))]


@pytest.mark.parametrize(
    ("reason", "subject", "header"),
    [
        (
            "close to your example Efficient Long-Context Retrieval for Agents",
            "1 new paper on papers like Efficient Long-Context… — 30 Nov",  # a label is at most 40 characters
            "papers like Efficient Long-Context…",
        ),
        (  # the title's LaTeX reads as text here too
            r"close to your example $\infty$Bench: Extending Context",
            "1 new paper on papers like ∞Bench: Extending Context — 30 Nov",
            "papers like ∞Bench: Extending Context",
        ),
        (  # an example we do not have: named by its id
            f"close to your example {EXAMPLE}",
            f"1 new paper on papers like {EXAMPLE} — 30 Nov",
            f"papers like {EXAMPLE}",
        ),
    ],
)
def test_an_example_paper_topic_is_named_by_its_title(reason: str, subject: str, header: str) -> None:
    ctx = replace(CONTEXT, topics=[f"like:{EXAMPLE}", "agents"])
    out = render_digest(TEMPLATES, ctx, _liked(reason), 0)
    assert out.subject == subject
    assert f"Your topics: {header}, agents" in out.text
    assert f"Matched: {latex_to_text(reason)}" in out.text  # the card's own reason is unchanged


def test_a_like_text_topic_is_named_by_its_quoted_text() -> None:
    topic = 'like:"context window extension"'
    out = render_digest(
        TEMPLATES, replace(CONTEXT, topics=[topic]), _liked('close to "context window extension"', (topic,)), 0
    )
    assert out.subject == '1 new paper on "context window extension" — 30 Nov'
    assert 'Your topics: "context window extension"' in out.text


def test_an_example_inside_a_larger_topic_keeps_its_id_and_other_topics_are_unchanged() -> None:
    """Only a lone like:ID topic's reason is exactly 'close to your example <title>'; in a larger
    topic the title cannot be told from the other words, so the label names the id."""
    topic = f"like:{EXAMPLE} agents"
    out = render_digest(
        TEMPLATES, replace(CONTEXT, topics=[topic]), _liked("close to your example Some Title agents", (topic,)), 0
    )
    assert out.subject == f"1 new paper on papers like {EXAMPLE} agents — 30 Nov"


def test_the_text_part_opens_with_the_view_in_browser_link_when_there_is_one() -> None:
    view = "https://digest.example.org/view/TOKEN-V"
    index = PaperIndex(PAPERS)
    chosen = select(index, TOPICS, candidates=index.all, cap=25).matches
    with_link = render_digest(TEMPLATES, replace(CONTEXT, view_url=view), chosen, 0).text
    assert with_link.splitlines()[1] == f"View in your browser: {view}"
    assert "View in your browser" not in render_digest(TEMPLATES, CONTEXT, chosen, 0).text  # a preview has none
