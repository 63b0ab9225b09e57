"""The parsers against saved feeds (tests/fixtures/feed-*), the arXiv id table, and hostile input."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

import feedparser
import pytest

from digest import parse as parse_module
from digest.config import SourceKind
from digest.parse import MAX_ABSTRACT, FeedError, ParsedPaper, ParseResult, arxiv_id, arxiv_urls, parse
from tests.conftest import FIXTURES

ARXIV_RSS = "feed-arxiv-rss.xml"
ARXIV_ATOM = "feed-arxiv-atom.xml"
HF = "feed-hf.json"
BLOG_RSS = "feed-generic.rss"
BLOG_ATOM = "feed-generic.atom"

FIXTURE_KINDS = {
    ARXIV_RSS: SourceKind.ARXIV_RSS,
    ARXIV_ATOM: SourceKind.ARXIV_ATOM,
    HF: SourceKind.HF_JSON,
    BLOG_RSS: SourceKind.RSS,
    BLOG_ATOM: SourceKind.RSS,
}

# The arXiv listing is dated "Tue, 04 Nov 2025 00:00:00 -0500".
ANNOUNCED = datetime(2025, 11, 4, 5, 0, tzinfo=UTC)
KV_POST = "https://blog.example.org/2025/11/03/kv-cache-quantization/"
ROUNDUP_POST = "https://blog.example.org/2025/10/31/roundup/"
TAG = "tag:research.example.net,2025:"

TAG_RE = re.compile(r"<[A-Za-z/!?]")
ENTITY_RE = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")


def parse_fixture(name: str) -> ParseResult:
    """Parse the saved bytes of a fixture feed with the parser its kind selects."""
    return parse(FIXTURE_KINDS[name], (FIXTURES / name).read_bytes())


def by_id(result: ParseResult, paper_id: str) -> ParsedPaper:
    matches = [p for p in result.papers if p.id == paper_id]
    assert len(matches) == 1, f"{paper_id} appears {len(matches)} times in {[p.id for p in result.papers]}"
    return matches[0]


# --------------------------------------------------------------------------- the saved fixtures, feed by feed


@pytest.mark.parametrize(
    ("fixture", "entries", "ids", "skipped"),
    [
        pytest.param(
            ARXIV_RSS,
            8,
            ["2505.53648", "2505.32774", "2412.11807", "hep-th/9901001", "2402.13718", "2406.21700"],
            ["2506.72313: announce type 'replace'", "2405.23131: announce type 'replace-cross'"],
            id="arxiv-rss: new and cross kept, replace and replace-cross skipped",
        ),
        pytest.param(
            ARXIV_ATOM,
            3,
            ["2505.32774", "2406.12345", "hep-th/9901001"],
            [],
            id="arxiv-atom: every entry kept",
        ),
        pytest.param(
            HF,
            5,
            ["2507.48843", "2505.53648", "2506.87888", "2509.54410"],
            ["2509.73935: withdrawn"],
            id="hf-json: withdrawn paper skipped",
        ),
        pytest.param(
            BLOG_RSS,
            4,
            [KV_POST, "2506.87888", ROUNDUP_POST],
            [f"{KV_POST}: duplicate entry"],
            id="blog rss: repeated guid skipped",
        ),
        pytest.param(
            BLOG_ATOM,
            3,
            [f"{TAG}post-101", f"{TAG}post-102", "2406.12345"],
            [],
            id="blog atom",
        ),
    ],
)
def test_fixture_entries_kept_and_skipped(fixture: str, entries: int, ids: list[str], skipped: list[str]) -> None:
    result = parse_fixture(fixture)
    assert result.entries == entries
    assert [p.id for p in result.papers] == ids
    assert result.skipped == skipped
    assert result.warning is None


ARXIV_PAPERS: list[tuple[str, dict[str, Any]]] = [
    (
        ARXIV_RSS,
        {
            "id": "2505.53648",
            "title": "Scaling External Knowledge Input Beyond Context Windows of LLMs via Multi-Agent Collaboration",
            "authors": [
                "Fatima Mensah", "Jin Sato", "Arjun Ali", "Jonas Petrova", "Sofia Bello", "Zara Ali", "Leila Mensah",
            ],
            "categories": ["cs.CL", "cs.AI"],
            "published": ANNOUNCED,
            "upvotes": None,
            "abstract": ("With the rapid advancement of post-training", "could benefit real-world applications."),
        },
    ),
    (
        ARXIV_RSS,
        {
            "id": "2505.32774",
            "title": "MMLongBench: Benchmarking Long-Context Vision-Language Models Effectively and Thoroughly",
            "authors": [
                "Elena Sharma", "Lucas Novak", "Ravi Rossi", "Yuki Liu", "Priya Liu", "Priya Haddad", "Leila Park",
                "Ines Berg", "Jin Ricci", "Kwame Tanaka", "Tomás Dubois", "Wei Novak",
            ],
            "categories": ["cs.CV", "cs.CL"],
            "published": ANNOUNCED,
            "upvotes": None,
            "abstract": ("The rapid extension of context windows", "advancing the next generation of LCVLMs."),
        },
    ),
    (
        ARXIV_RSS,
        {
            "id": "2412.11807",
            "title": "Context Clues: Evaluating Long Context Models for Clinical Prediction Tasks on EHRs",
            "authors": [
                "Daniel Liu", "Mei Rahman", "Ines Gupta", "Kwame Sharma", "Hiro Ricci", "Tomás Li", "Ines Haddad",
                "Ines Ricci",
            ],
            "categories": ["cs.SE", "cs.CL"],
            "published": ANNOUNCED,
            "upvotes": None,
            "abstract": ("Foundation Models (FMs) trained on Electronic", "github.com/som-shahlab/long_context_clues"),
        },
    ),
    (
        ARXIV_RSS,
        {
            "id": "hep-th/9901001",
            "title": "A Holographic Bound on the Information Capacity of Long Contexts",
            "authors": ["Jin Sato", "Sofia Bello"],  # dc:creator "Jin Sato and Sofia Bello"
            "categories": ["hep-th", "cs.LG"],
            "published": ANNOUNCED,
            "upvotes": None,
            "abstract": ("We argue that the information", "We discuss consequences for the large N limit."),
        },
    ),
    (
        ARXIV_RSS,
        {
            "id": "2402.13718",
            # The feed has "&amp;amp;" and "Na&amp;iuml;ve": HTML entities inside the XML text.
            "title": "$\\infty$Bench: Extending Long Context Evaluation Beyond 100K Tokens & Naïve Baselines",
            "authors": ["Mei Rahman", "Hiro Ricci", "Ana Khan"],
            "categories": ["cs.CL"],
            "published": ANNOUNCED,
            "upvotes": None,
            "abstract": ("Processing and reasoning over long contexts", "presented in both English and Chinese."),
        },
    ),
    (
        ARXIV_RSS,
        {
            "id": "2406.21700",
            "title": "LongIns: A Challenging Long-context Instruction-based Exam for LLMs",
            "authors": [
                "Sofia Khan", "Jonas Petrova", "Wei Haddad", "Mateo Silva", "Daniel Tanaka", "Wei Dubois",
                "Elena Novak", "Noor Sato", "Fatima Kim", "Fatima Petrova",
            ],
            "categories": ["cs.CL"],
            "published": ANNOUNCED,
            "upvotes": None,
            "abstract": ("The long-context capabilities of large language", "short context windows (less than 4k)."),
        },
    ),
    (
        ARXIV_ATOM,
        {
            "id": "2505.32774",  # <id>http://arxiv.org/abs/2505.32774v2</id>; the title is wrapped over two lines
            "title": "MMLongBench: Benchmarking Long-Context Vision-Language Models Effectively and Thoroughly",
            "authors": [
                "Elena Sharma", "Lucas Novak", "Ravi Rossi", "Yuki Liu", "Priya Liu", "Priya Haddad", "Leila Park",
                "Ines Berg", "Jin Ricci", "Kwame Tanaka", "Tomás Dubois", "Wei Novak",
            ],
            "categories": ["cs.CV", "cs.CL"],
            "published": datetime(2025, 5, 15, 17, 59, tzinfo=UTC),
            "upvotes": None,
            "abstract": ("The rapid extension of context windows", "advancing the next generation of LCVLMs."),
        },
    ),
    (
        ARXIV_ATOM,
        {
            "id": "2406.12345",
            "title": "Extending Context Window of Large Language Models from a Distributional Perspective",
            "authors": ["Lucas Zhang", "Daniel Martin", "Ana Ricci", "Noor Mensah"],
            "categories": ["cs.CL", "cs.LG"],  # the ACM class I.2.7 is not an arXiv category
            "published": datetime(2024, 6, 18, 8, 30, tzinfo=UTC),
            "upvotes": None,
            "abstract": ("Scaling the rotary position embedding (RoPE)", "fluctuation ranging from -0.12 to +0.22."),
        },
    ),
    (
        ARXIV_ATOM,
        {
            "id": "hep-th/9901001",
            "title": "A Holographic Bound on the Information Capacity of Long Contexts",
            "authors": ["Jin Sato", "Sofia Bello"],
            "categories": ["hep-th", "math-ph", "math.MP"],  # the MSC class 81T30 is dropped
            "published": datetime(1999, 1, 4, 18, 12, 31, tzinfo=UTC),
            "upvotes": None,
            "abstract": ("We argue that the information", "We discuss consequences for the large N limit."),
        },
    ),
    (
        HF,
        {
            "id": "2507.48843",
            "title": "A Survey of Context Engineering for Large Language Models",
            "authors": [
                "Arjun Liu", "Hiro Müller", "Hiro Dubois", "Mateo Tanaka", "Ana Petrova", "Kwame Sharma", "Mei Haddad",
                "Ravi Silva", "Hiro Tanaka", "Fatima Wang", "Ivan Khan", "Mateo García", "Jin Rossi", "Lena Iyer",
                "Emma Novak",
            ],
            "categories": [],
            "published": datetime(2025, 7, 17, 17, 59, tzinfo=UTC),
            "upvotes": 131,
            "abstract": ("The performance of Large Language Models (LLMs)", "engineers advancing context-aware AI."),
        },
    ),
    (
        HF,
        {
            "id": "2505.53648",
            "title": "Scaling External Knowledge Input Beyond Context Windows of LLMs via Multi-Agent Collaboration",
            "authors": [
                "Fatima Mensah", "Jin Sato", "Arjun Ali", "Jonas Petrova", "Sofia Bello", "Zara Ali", "Leila Mensah",
            ],
            "categories": [],
            "published": datetime(2025, 5, 27, 17, 59, tzinfo=UTC),
            "upvotes": 14,
            "abstract": ("With the rapid advancement of post-training", "could benefit real-world applications."),
        },
    ),
    (
        HF,
        {
            "id": "2506.87888",
            "title": "Hierarchical Reasoning Model",
            "authors": [
                "Emma Martin", "Ravi Costa", "Mateo Silva", "Priya Moreau", "Omar Moreau", "Yuki Rossi",
                "Tomás Dubois", "Noor Berg", "Elena Iyer",
            ],
            "categories": [],
            "published": datetime(2025, 6, 26, 17, 59, tzinfo=UTC),
            "upvotes": 57,
            "abstract": ("Reasoning, the process of devising", "and general-purpose reasoning systems."),
        },
    ),
    (
        HF,
        {
            "id": "2509.54410",
            "title": "Mem-α: Learning Memory Construction via Reinforcement Learning",
            "authors": [
                "Noor Ricci", "Lena Gupta", "Kwame Kim", "Paolo Mensah", "Omar Novak", "Sofia Khan", "Sofia Martin",
            ],
            "categories": [],
            "published": datetime(2025, 9, 30, 17, 59, tzinfo=UTC),
            "upvotes": 0,
            "abstract": ("Large language model (LLM) agents are", "highlighting the robustness of Mem-alpha."),
        },
    ),
]  # fmt: skip


@pytest.mark.parametrize(("fixture", "expected"), ARXIV_PAPERS, ids=[f"{f}:{e['id']}" for f, e in ARXIV_PAPERS])
def test_arxiv_and_hf_fixture_papers(fixture: str, expected: dict[str, Any]) -> None:
    paper = by_id(parse_fixture(fixture), expected["id"])
    assert paper.title == expected["title"]
    assert paper.authors == expected["authors"]
    assert paper.categories == expected["categories"]
    assert paper.published == expected["published"]
    assert paper.published is not None and paper.published.utcoffset() == timedelta(0)
    assert paper.upvotes == expected["upvotes"]
    assert paper.abs_url == f"https://arxiv.org/abs/{expected['id']}"
    assert paper.pdf_url == f"https://arxiv.org/pdf/{expected['id']}"
    start, end = expected["abstract"]
    assert paper.abstract.startswith(start)
    assert paper.abstract.endswith(end)
    assert "\n" not in paper.abstract  # the API's line breaks and the HF summary's are folded


BLOG_PAPERS: list[tuple[str, ParsedPaper]] = [
    (
        BLOG_RSS,
        ParsedPaper(
            id=KV_POST,
            title="Reading notes: KV cache quantization",
            # <p>, <a>, &amp;, <script>alert("pwned")</script>, <img onerror=...>, &nbsp; and <em> in a CDATA block
            abstract="This week we read KVQuant & friends. Quantizing the cache to 3 bits works surprisingly well.",
            authors=["Ana Khan"],
            categories=["reading-group", "inference"],
            published=datetime(2025, 11, 3, 17, 30, tzinfo=UTC),  # Mon, 03 Nov 2025 18:30:00 +0100
            abs_url=KV_POST,
            pdf_url=None,
        ),
    ),
    (
        BLOG_RSS,
        ParsedPaper(
            id="2506.87888",  # <link>https://arxiv.org/abs/2506.87888v1</link>, guid ?p=412
            title="Paper of the week: Hierarchical Reasoning Model",  # escaped <i>...</i> in the title
            abstract="Our pick this week: a recurrent model that plans at two time scales.",
            authors=["Ravi Silva"],  # <author>ravi@example.org (Ravi Silva)</author>
            categories=["paper-of-the-week"],
            published=datetime(2025, 11, 2, 9, 0, tzinfo=UTC),
            abs_url="https://arxiv.org/abs/2506.87888",
            pdf_url="https://arxiv.org/pdf/2506.87888",
        ),
    ),
    (
        BLOG_RSS,
        ParsedPaper(
            id=ROUNDUP_POST,  # no <guid>: the link is the key
            title="Long-context roundup, October 2025",
            abstract="Ten papers on long context, ranked. Slides attached.",
            authors=[],
            categories=[],
            published=datetime(2025, 10, 31, 12, 0, tzinfo=UTC),
            abs_url=ROUNDUP_POST,
            pdf_url="https://blog.example.org/files/roundup-2025-10.pdf",  # the PDF enclosure
        ),
    ),
    (
        BLOG_ATOM,
        ParsedPaper(
            id=f"{TAG}post-101",
            title="Why long context still matters",  # type="html" title with <em>
            abstract="Retrieval is not enough: last month we showed why.",  # escaped <script> in the summary dropped
            authors=["Lena Costa", "Ravi Silva"],
            categories=["long-context", "evaluation"],
            published=datetime(2025, 11, 3, 8, 0, tzinfo=UTC),  # 2025-11-03T10:00:00+02:00
            abs_url="https://research.example.net/posts/101",
            pdf_url="https://research.example.net/posts/101/slides.pdf",
        ),
    ),
    (
        BLOG_ATOM,
        ParsedPaper(
            id=f"{TAG}post-102",
            title="Benchmarks we trust",
            abstract="A short list of long-context benchmarks and what each one measures.",  # type="xhtml"
            authors=["Lena Costa"],
            categories=[],
            published=datetime(2025, 10, 20, 15, 30, tzinfo=UTC),  # no <published>: <updated> stands in
            abs_url="https://research.example.net/posts/102",
            pdf_url=None,
        ),
    ),
    (
        BLOG_ATOM,
        ParsedPaper(
            id="2406.12345",  # the alternate link is https://arxiv.org/abs/2406.12345v2
            title="Preprint: extending context windows from a distributional perspective",
            abstract="Our paper on rotary-angle distributions is now on arXiv.",
            authors=["Lucas Zhang"],
            categories=[],
            published=datetime(2024, 6, 18, 12, 0, tzinfo=UTC),
            abs_url="https://arxiv.org/abs/2406.12345",
            pdf_url="https://arxiv.org/pdf/2406.12345",
        ),
    ),
]


@pytest.mark.parametrize(("fixture", "expected"), BLOG_PAPERS, ids=[f"{f}:{e.id}" for f, e in BLOG_PAPERS])
def test_generic_feed_fixture_papers(fixture: str, expected: ParsedPaper) -> None:
    expected.authoritative = False  # a blog's description never outranks arXiv's or Hugging Face's
    assert by_id(parse_fixture(fixture), expected.id) == expected


@pytest.mark.parametrize("fixture", list(FIXTURE_KINDS))
def test_fixture_text_is_plain_one_line(fixture: str) -> None:
    result = parse_fixture(fixture)
    assert result.papers
    for paper in result.papers:
        for text in (paper.title, paper.abstract, *paper.authors, *paper.categories):
            assert not TAG_RE.search(text), text
            assert not ENTITY_RE.search(text), text
            assert "\n" not in text and "\r" not in text and "\t" not in text, text
            assert text == text.strip()


def test_arxiv_rss_abstract_loses_the_announce_prefix() -> None:
    for paper in parse_fixture(ARXIV_RSS).papers:
        assert "Announce Type" not in paper.abstract
        assert not paper.abstract.startswith(("arXiv:", "Abstract:"))


def test_hf_fixture_shares_exactly_one_paper_with_the_arxiv_listing() -> None:
    rss_ids = {p.id for p in parse_fixture(ARXIV_RSS).papers}
    hf_ids = {p.id for p in parse_fixture(HF).papers}
    assert rss_ids & hf_ids == {"2505.53648"}


# --------------------------------------------------------------------------- arXiv ids and URLs


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2406.12345", "2406.12345"),
        ("2406.12345v2", "2406.12345"),
        ("2406.1234", "2406.1234"),
        ("0704.0001v1", "0704.0001"),
        ("  2406.12345v3\n", "2406.12345"),
        ("hep-th/9901001", "hep-th/9901001"),
        ("hep-th/9901001v3", "hep-th/9901001"),
        ("math.GT/0309136", "math.GT/0309136"),
        ("cond-mat/0101001v2", "cond-mat/0101001"),
        ("https://arxiv.org/abs/2406.12345", "2406.12345"),
        ("https://arxiv.org/abs/2406.12345v2", "2406.12345"),
        ("http://arxiv.org/abs/2406.12345v1", "2406.12345"),
        ("https://export.arxiv.org/abs/2406.12345v2", "2406.12345"),
        ("https://arxiv.org/abs/hep-th/9901001v1", "hep-th/9901001"),
        ("https://arxiv.org/abs/math.GT/0309136", "math.GT/0309136"),
        ("https://arxiv.org/pdf/2406.12345", "2406.12345"),
        ("https://arxiv.org/pdf/2406.12345v2", "2406.12345"),
        ("https://arxiv.org/pdf/2406.12345v2.pdf", "2406.12345"),
        ("http://arxiv.org/pdf/hep-th/9901001v2", "hep-th/9901001"),
        ("arXiv:2406.12345", "2406.12345"),
        ("arXiv:2406.12345v3", "2406.12345"),
        ("ARXIV:2406.12345", "2406.12345"),
        ("arXiv:hep-th/9901001", "hep-th/9901001"),
        ("oai:arXiv.org:2406.12345v1", "2406.12345"),
        ("oai:arXiv.org:hep-th/9901001v2", "hep-th/9901001"),
        ("", None),
        ("   ", None),
        ("https://example.com/blog/post-1", None),
        ("https://blog.example.org/?p=412", None),
        ("tag:research.example.net,2025:post-101", None),
        ("10.1145/3597503.3639187", None),
        ("https://github.com/stanfordmlgroup/ManyICL", None),
        ("1234.567", None),
        ("hep-th/990100", None),
        ("Announce Type: new", None),
        ("http://arxiv.org/api/errors#incorrect_id_format_for_1234.1234", None),
    ],
)
def test_arxiv_id(text: str, expected: str | None) -> None:
    assert arxiv_id(text) == expected


@pytest.mark.parametrize(
    ("paper_id", "abs_url", "pdf_url"),
    [
        ("2406.12345", "https://arxiv.org/abs/2406.12345", "https://arxiv.org/pdf/2406.12345"),
        ("hep-th/9901001", "https://arxiv.org/abs/hep-th/9901001", "https://arxiv.org/pdf/hep-th/9901001"),
    ],
)
def test_arxiv_urls(paper_id: str, abs_url: str, pdf_url: str) -> None:
    assert arxiv_urls(paper_id) == (abs_url, pdf_url)


# --------------------------------------------------------------------------- hostile input, every parser

Entry = dict[str, str]


def _x(text: str) -> str:
    """XML-escape text, keeping CR and LF as character references so the XML parser cannot normalise them."""
    return escape(text, {"\r": "&#13;", "\n": "&#10;"})


def arxiv_rss_doc(entries: list[Entry], encoding: str = "UTF-8") -> str:
    items = "".join(
        f"<item><title>{_x(e['title'])}</title><link>https://arxiv.org/abs/{e['id']}</link>"
        f"<description>arXiv:{e['id']}v1 Announce Type: {e.get('announce', 'new')} \n"
        f"Abstract: {_x(e['abstract'])}</description>"
        f'<guid isPermaLink="false">oai:arXiv.org:{e["id"]}v1</guid><category>cs.CL</category>'
        "<pubDate>Tue, 04 Nov 2025 00:00:00 -0500</pubDate>"
        f"<arxiv:announce_type>{e.get('announce', 'new')}</arxiv:announce_type>"
        f"<dc:creator>{_x(e['authors'])}</dc:creator></item>\n"
        for e in entries
    )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel>'
        "<title>cs.CL updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.CL</link>\n"
        f"{items}</channel></rss>\n"
    )


def arxiv_atom_doc(entries: list[Entry], encoding: str = "UTF-8") -> str:
    items = "".join(
        f"<entry><id>http://arxiv.org/abs/{e['id']}v1</id><published>2025-11-03T17:59:00Z</published>"
        f"<title>{_x(e['title'])}</title><summary>{_x(e['abstract'])}</summary>"
        + "".join(f"<author><name>{_x(a)}</name></author>" for a in e["authors"].split(", "))
        + '<category term="cs.CL" scheme="http://arxiv.org/schemas/atom"/></entry>\n'
        for e in entries
    )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
        'xmlns:arxiv="http://arxiv.org/schemas/atom"><title>arXiv Query</title>\n'
        f"{items}</feed>\n"
    )


def blog_rss_doc(entries: list[Entry], encoding: str = "UTF-8") -> str:
    items = "".join(
        f"<item><title>{_x(e['title'])}</title><link>https://blog.example.org/posts/{e['id']}</link>"
        f'<guid isPermaLink="true">https://blog.example.org/posts/{e["id"]}</guid>'
        f"<description>{_x(e['abstract'])}</description><dc:creator>{_x(e['authors'])}</dc:creator>"
        "<pubDate>Mon, 03 Nov 2025 18:30:00 +0100</pubDate></item>\n"
        for e in entries
    )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n'
        '<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>'
        "<title>Blog</title><link>https://blog.example.org/</link>\n"
        f"{items}</channel></rss>\n"
    )


def blog_atom_doc(entries: list[Entry], encoding: str = "UTF-8") -> str:
    items = "".join(
        f"<entry><id>https://blog.example.org/posts/{e['id']}</id><title>{_x(e['title'])}</title>"
        f'<link href="https://blog.example.org/posts/{e["id"]}"/><updated>2025-11-03T10:00:00Z</updated>'
        f"<summary>{_x(e['abstract'])}</summary><author><name>{_x(e['authors'])}</name></author></entry>\n"
        for e in entries
    )
    return (
        f'<?xml version="1.0" encoding="{encoding}"?>\n<feed xmlns="http://www.w3.org/2005/Atom">'
        "<title>Blog</title><id>https://blog.example.org/</id>\n"
        f"{items}</feed>\n"
    )


def hf_doc(entries: list[Entry], encoding: str = "UTF-8") -> str:
    return json.dumps(
        [
            {
                "paper": {
                    "id": e["id"],
                    "title": e["title"],
                    "summary": e["abstract"],
                    "authors": [{"name": a} for a in e["authors"].split(", ")],
                    "upvotes": 3,
                    "publishedAt": "2025-11-03T17:59:00.000Z",
                },
                "title": e["title"],
            }
            for e in entries
        ]
    )


def _blog_id(pid: str) -> str:
    return f"https://blog.example.org/posts/{pid}"


def _arxiv_key(pid: str) -> str:
    return pid


Flavor = tuple[SourceKind, Callable[..., str], Callable[[str], str]]
FLAVORS: dict[str, Flavor] = {
    "arxiv-rss": (SourceKind.ARXIV_RSS, arxiv_rss_doc, _arxiv_key),
    "arxiv-atom": (SourceKind.ARXIV_ATOM, arxiv_atom_doc, _arxiv_key),
    "hf-json": (SourceKind.HF_JSON, hf_doc, _arxiv_key),
    "rss (RSS 2.0)": (SourceKind.RSS, blog_rss_doc, _blog_id),
    "rss (Atom)": (SourceKind.RSS, blog_atom_doc, _blog_id),
}
XML_FLAVORS = [name for name, (kind, _, _) in FLAVORS.items() if kind != SourceKind.HF_JSON]
XML_KINDS = [SourceKind.ARXIV_RSS, SourceKind.ARXIV_ATOM, SourceKind.RSS]


def entry(pid: str = "2406.00001", title: str = "Sparse Attention", **rest: str) -> Entry:
    return {"id": pid, "title": title, "abstract": "An abstract.", "authors": "Ada Lovelace, Alan Turing", **rest}


def parse_flavor(flavor: str, entries: list[Entry]) -> tuple[ParseResult, Callable[[str], str]]:
    kind, build, key = FLAVORS[flavor]
    return parse(kind, build(entries).encode("utf-8")), key


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_script_in_title_becomes_plain_text(flavor: str) -> None:
    result, _ = parse_flavor(flavor, [entry(title="<script>alert(1)</script>Sparse Attention")])
    [paper] = result.papers
    assert "<script" not in paper.title.lower()
    assert "<" not in paper.title and ">" not in paper.title
    assert paper.title.endswith("Sparse Attention")


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_script_in_abstract_is_dropped(flavor: str) -> None:
    abstract = 'Before. <script>alert(document.cookie)</script><img src="x" onerror="alert(1)"> After.'
    result, _ = parse_flavor(flavor, [entry(abstract=abstract)])
    [paper] = result.papers
    assert "<script" not in paper.abstract.lower()
    assert "<img" not in paper.abstract.lower() and "onerror" not in paper.abstract
    assert paper.abstract.startswith("Before.")
    assert paper.abstract.endswith("After.")


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_title_with_line_breaks_becomes_one_line(flavor: str) -> None:
    result, _ = parse_flavor(flavor, [entry(title="Sparse Attention\r\nfor Long\rContexts\n\u2028Revisited")])
    [paper] = result.papers
    assert paper.title == "Sparse Attention for Long Contexts Revisited"


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_megabyte_abstract_is_clipped_and_reported(flavor: str) -> None:
    abstract = "abcd " * 199_999 + "abcde"
    assert len(abstract) == 1_000_000
    result, key = parse_flavor(flavor, [entry(abstract=abstract)])
    [paper] = result.papers
    assert len(paper.abstract) <= MAX_ABSTRACT
    assert len(paper.abstract) > MAX_ABSTRACT - 10
    assert paper.abstract.startswith("abcd abcd abcd")
    assert paper.abstract.endswith("…")
    assert paper.title == "Sparse Attention"
    assert result.skipped == [f"{key('2406.00001')}: abstract clipped to {MAX_ABSTRACT} characters"]


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_duplicate_entries_are_reported(flavor: str) -> None:
    entries = [entry(title="First copy"), entry(pid="2406.00002", title="Other"), entry(title="Second copy")]
    result, key = parse_flavor(flavor, entries)
    assert result.entries == 3
    assert [(p.id, p.title) for p in result.papers] == [(key("2406.00001"), "First copy"), (key("2406.00002"), "Other")]
    assert result.skipped == [f"{key('2406.00001')}: duplicate entry"]


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_entry_without_title_is_skipped(flavor: str) -> None:
    result, key = parse_flavor(flavor, [entry(title=""), entry(pid="2406.00002")])
    assert [p.id for p in result.papers] == [key("2406.00002")]
    assert result.skipped == [f"{key('2406.00001')}: no title"]


@pytest.mark.parametrize("kind", XML_KINDS)
@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"Service Unavailable\n", id="plain text"),
        pytest.param(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10", id="png"),
        pytest.param((FIXTURES / HF).read_bytes(), id="json"),
        pytest.param(b"<!DOCTYPE html><html><body><p>Rate limited<br></body></html>", id="html (not xml)"),
    ],
)
def test_xml_kinds_reject_bytes_that_are_not_xml(kind: SourceKind, content: bytes) -> None:
    with pytest.raises(FeedError):
        parse(kind, content)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(b"", "not JSON", id="empty"),
        pytest.param(b"<html><body>Bad gateway</body></html>", "not JSON", id="html"),
        pytest.param((FIXTURES / ARXIV_RSS).read_bytes(), "not JSON", id="rss"),
        pytest.param(b'[{"paper": {"id": "2406.00001"', "not JSON", id="truncated"),
        pytest.param(b"\xff\xfe\x00\xd8garbage", "not JSON", id="binary"),
        pytest.param(b"[" * 100_000, "not JSON", id="deeply nested, unterminated"),
        pytest.param(b'{"error": "Invalid date"}', "expected a JSON list", id="object"),
        pytest.param(b"null", "expected a JSON list", id="null"),
        pytest.param(b'"2025-11-04"', "expected a JSON list", id="string"),
        pytest.param(b"42", "expected a JSON list", id="number"),
    ],
)
def test_hf_json_rejects_non_json_and_wrong_shapes(content: bytes, message: str) -> None:
    with pytest.raises(FeedError, match=message):
        parse(SourceKind.HF_JSON, content)


def _hf(paper: dict[str, Any], **item: Any) -> dict[str, Any]:
    return {"paper": {"id": "2406.00001", "title": "Sparse Attention", **paper}, **item}


@pytest.mark.parametrize(
    ("items", "skipped"),
    [
        ([1, "paper", None, [], {"title": "no paper"}, {"paper": "2406.00001"}], ["item without a paper object"] * 6),
        ([_hf({"id": "not-an-id"})], ["paper id 'not-an-id' is not an arXiv id"]),
        ([_hf({"id": None})], ["paper id 'None' is not an arXiv id"]),
        ([_hf({"withdrawnAt": "2025-11-04T09:00:00.000Z"})], ["2406.00001: withdrawn"]),
        ([_hf({"withdrawn": True})], ["2406.00001: withdrawn"]),
        ([_hf({}, withdrawnAt="2025-11-04T09:00:00.000Z")], ["2406.00001: withdrawn"]),
    ],
)
def test_hf_items_of_the_wrong_shape_are_skipped_with_a_reason(items: list[Any], skipped: list[str]) -> None:
    result = parse(SourceKind.HF_JSON, json.dumps(items).encode())
    assert result.papers == []
    assert result.entries == len(items)
    assert result.skipped == skipped


@pytest.mark.parametrize(
    ("paper", "item", "field", "expected"),
    [
        ({"upvotes": 12}, {}, "upvotes", 12),
        ({"upvotes": "12"}, {}, "upvotes", None),
        ({"upvotes": -3}, {}, "upvotes", None),
        ({"upvotes": True}, {}, "upvotes", None),
        ({"upvotes": 1.5}, {}, "upvotes", None),
        ({"publishedAt": "2025-11-04T10:00:00.000+02:00"}, {}, "published", datetime(2025, 11, 4, 8, tzinfo=UTC)),
        ({"publishedAt": "2025-11-04T10:00:00"}, {}, "published", datetime(2025, 11, 4, 10, tzinfo=UTC)),
        ({"publishedAt": "yesterday"}, {}, "published", None),
        ({"publishedAt": 1762250000}, {}, "published", None),
        ({}, {"publishedAt": "2025-11-04T04:12:31.000Z"}, "published", datetime(2025, 11, 4, 4, 12, 31, tzinfo=UTC)),
        ({"title": None}, {"title": "Item-level title"}, "title", "Item-level title"),
        ({"title": "<b>Bold</b> &amp; brave"}, {}, "title", "Bold & brave"),
        ({}, {"summary": "Item-level\nsummary"}, "abstract", "Item-level summary"),
        ({"authors": "Ada Lovelace"}, {}, "authors", []),
        ({"authors": [{"name": "Ada Lovelace"}, "Alan Turing", {"name": ""}, {"_id": "x"}]}, {}, "authors",
         ["Ada Lovelace"]),
        ({"id": "2406.00001v3"}, {}, "id", "2406.00001"),
    ],
)  # fmt: skip
def test_hf_item_fields(paper: dict[str, Any], item: dict[str, Any], field: str, expected: Any) -> None:
    result = parse(SourceKind.HF_JSON, json.dumps([_hf(paper, **item)]).encode())
    [parsed] = result.papers
    assert getattr(parsed, field) == expected


def test_arxiv_rss_without_announce_type_is_treated_as_new() -> None:
    doc = arxiv_rss_doc([entry()]).replace("<arxiv:announce_type>new</arxiv:announce_type>", "")
    result = parse(SourceKind.ARXIV_RSS, doc.encode())
    assert [p.id for p in result.papers] == ["2406.00001"]
    assert result.skipped == []


def test_arxiv_rss_item_without_arxiv_id_is_skipped() -> None:
    doc = arxiv_rss_doc([entry(), entry(pid="2406.00002")])
    doc = doc.replace("https://arxiv.org/abs/2406.00002", "https://example.com/post").replace(
        "oai:arXiv.org:2406.00002v1", "urn:uuid:0b5f"
    )
    result = parse(SourceKind.ARXIV_RSS, doc.encode())
    assert [p.id for p in result.papers] == ["2406.00001"]
    assert result.skipped == ["entry 'urn:uuid:0b5f': no arXiv id"]


def test_arxiv_api_error_feed_yields_no_papers() -> None:
    doc = (
        b'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>arXiv Query</title>'
        b"<entry><id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.1234</id><title>Error</title>"
        b"<summary>incorrect id format for 1234.1234</summary></entry></feed>"
    )
    result = parse(SourceKind.ARXIV_ATOM, doc)
    assert result.papers == []
    assert result.skipped == ["entry 'http://arxiv.org/api/errors#incorrect_id_format_for_1234.1234': no arXiv id"]


@pytest.mark.parametrize("flavor", XML_FLAVORS)
def test_truncated_xml_keeps_the_entries_that_parsed(flavor: str) -> None:
    kind, build, key = FLAVORS[flavor]
    doc = build([entry(title="First"), entry(pid="2406.00002", title="Second")])
    cut = doc[: doc.index("Second") + 3]  # the connection dropped inside the second entry's title
    result = parse(kind, cut.encode())
    assert [(p.id, p.title) for p in result.papers] == [(key("2406.00001"), "First")]
    assert result.entries == 2
    assert len(result.skipped) == 1  # the half entry is reported (no title, or no id yet), not kept
    assert result.warning is not None
    assert result.warning.startswith("feed is not well-formed, kept what parsed")


@pytest.mark.parametrize("flavor", XML_FLAVORS)
def test_undefined_entity_keeps_every_entry_with_a_warning(flavor: str) -> None:
    kind, build, key = FLAVORS[flavor]
    doc = build([entry(title="First TITLE"), entry(pid="2406.00002", title="Second")])
    doc = doc.replace("First TITLE", "First&nbsp;paper")  # legal in HTML, undefined in XML
    result = parse(kind, doc.encode())
    assert [p.id for p in result.papers] == [key("2406.00001"), key("2406.00002")]
    assert result.papers[1].title == "Second"
    assert result.warning is not None
    assert result.warning.startswith("feed is not well-formed, kept what parsed")


@pytest.mark.parametrize("flavor", XML_FLAVORS)
def test_latin1_bytes_declared_utf8_do_not_crash(flavor: str) -> None:
    kind, build, key = FLAVORS[flavor]
    doc = build([entry(title="Café: naïve attention", authors="José Pérez")], encoding="utf-8")
    result = parse(kind, doc.encode("latin-1"))
    [paper] = result.papers
    assert paper.id == key("2406.00001")
    # feedparser guesses a single-byte charset (which one is chardet's call): one character per byte, none lost.
    assert paper.title.startswith("Caf") and paper.title.endswith("ve attention")
    assert len(paper.title) == len("Café: naïve attention")
    assert "\ufffd" not in paper.title
    assert len(paper.authors) == 1 and paper.authors[0].startswith("Jos") and paper.authors[0].endswith("rez")
    assert result.warning is not None
    assert "declared as utf-8" in result.warning  # the mismatch is reported, not silently accepted


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_a_hostile_multi_megabyte_abstract_costs_only_its_limit(flavor: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from digest import text

    calls: list[tuple[int, int]] = []
    bounded = text.bounded

    def spy(raw: str, limit: int | None) -> str:
        kept = bounded(raw, limit)
        calls.append((len(raw), len(kept)))
        return kept

    monkeypatch.setattr(text, "bounded", spy)
    result, key = parse_flavor(flavor, [entry(abstract="<b" * 1_500_000)])
    [paper] = result.papers
    assert paper.id == key("2406.00001") and len(paper.abstract) <= MAX_ABSTRACT
    # The 3 MB field went through the bound before any cleaning: what reaches the regexes and the
    # HTML parser is at most the limit's worth.
    assert [kept for raw, kept in calls if raw >= 3_000_000] == [MAX_ABSTRACT * text.RAW_SLACK]


@pytest.mark.parametrize("kind", [SourceKind.ARXIV_RSS, SourceKind.ARXIV_ATOM, SourceKind.RSS])
def test_a_parser_that_breaks_on_a_feed_is_that_feeds_one_line_error(
    kind: SourceKind, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> object:
        raise IndexError("list index out of range\nin the loose parser")

    monkeypatch.setattr(feedparser, "parse", broken)
    with pytest.raises(FeedError, match="parser could not read this feed: IndexError: list index out of range in"):
        parse(kind, b"<rss/>")


def test_an_entry_that_breaks_the_parser_is_skipped_and_the_others_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    real = parse_module._finish

    def finish(paper: ParsedPaper, result: ParseResult) -> None:
        if paper.id.endswith("2406.00002"):
            raise OverflowError("int too large")
        real(paper, result)

    monkeypatch.setattr(parse_module, "_finish", finish)
    entries = [entry(), entry(pid="2406.00002"), entry(pid="2406.00003")]
    for flavor in FLAVORS:
        result, key = parse_flavor(flavor, entries)
        assert [p.id for p in result.papers] == [key("2406.00001"), key("2406.00003")]
        assert result.skipped == ["entry 2: unreadable (OverflowError: int too large)"]


@pytest.mark.parametrize(
    ("ref", "kept"), [("&#1114112;", "\ufffd"), ("&#xD800;", "\ufffd"), ("&#x1F600;", "😀"), ("&#233;", "é")]
)
def test_character_references_no_character_has_become_the_replacement_character(ref: str, kept: str) -> None:
    doc = f'<rss version="2.0"><channel><title>t</title><item><title>a {ref} b</title><link>https://arxiv.org/abs/2406.00001</link></item></channel></rss>'
    [paper] = parse(SourceKind.RSS, doc.encode()).papers
    assert paper.title == f"a {kept} b"


@pytest.mark.parametrize("upvotes", ["9" * 5000, str(2**64), "-3", "1e9"])
def test_an_upvote_count_no_column_holds_is_dropped_not_the_feed(upvotes: str) -> None:
    bad = f'{{"paper": {{"id": "2406.00001", "title": "A", "upvotes": {upvotes}}}}}'
    doc = f'[{bad}, {{"paper": {{"id": "2406.00002", "title": "B", "upvotes": 4}}}}]'
    result = parse(SourceKind.HF_JSON, doc.encode())
    assert [(p.id, p.upvotes) for p in result.papers] == [("2406.00001", None), ("2406.00002", 4)]
