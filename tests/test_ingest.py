"""Ingest into a real SQLite database: idempotence, one row per paper across sources, versions, plain text."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from digest.config import Settings, SourceConfig, SourceKind
from digest.db import open_session
from digest.ingest import MAX_HISTORY, fetch_all, ingest_bytes, store_papers
from digest.models import Paper
from digest.parse import FeedError, ParsedPaper
from tests.conftest import FIXTURES, NOW
from tests.httpserver import HTTPTestServer, Response, http_server_fixture  # noqa: F401  (the fixture)
from tests.test_parse import FLAVORS, entry

ARXIV_RSS = "feed-arxiv-rss.xml"
ARXIV_ATOM = "feed-arxiv-atom.xml"
HF = "feed-hf.json"
BLOG_RSS = "feed-generic.rss"
BLOG_ATOM = "feed-generic.atom"

# fixture -> (kind, source name)
SOURCES: dict[str, tuple[SourceKind, str]] = {
    ARXIV_RSS: (SourceKind.ARXIV_RSS, "arxiv-listing"),
    ARXIV_ATOM: (SourceKind.ARXIV_ATOM, "arxiv-api"),
    HF: (SourceKind.HF_JSON, "hf-daily"),
    BLOG_RSS: (SourceKind.RSS, "reading-group"),
    BLOG_ATOM: (SourceKind.RSS, "lab-notes"),
}

RSS_IDS = {"2505.53648", "2505.32774", "2412.11807", "hep-th/9901001", "2402.13718", "2406.21700"}
HF_IDS = {"2507.48843", "2505.53648", "2506.87888", "2509.54410"}
SHARED = "2505.53648"  # in the arXiv listing and on Hugging Face
SHARED_TITLE = "Scaling External Knowledge Input Beyond Context Windows of LLMs via Multi-Agent Collaboration"
SHARED_AUTHORS = ["Fatima Mensah", "Jin Sato", "Arjun Ali", "Jonas Petrova", "Sofia Bello", "Zara Ali", "Leila Mensah"]

TAG_RE = re.compile(r"<[A-Za-z/!?]")
ENTITY_RE = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def ingest(session: Session, fixture: str, now: datetime = NOW, content: bytes | None = None) -> tuple[int, int]:
    """Ingest a saved fixture (or replacement bytes) as its source would; returns (new, updated)."""
    kind, source = SOURCES[fixture]
    _, new, updated = ingest_bytes(session, content or (FIXTURES / fixture).read_bytes(), kind, source, now)
    return new, updated


def stored(engine: Engine) -> dict[str, Paper]:
    """Every paper row as the database holds it, read through a fresh session (no identity-map cache)."""
    with Session(engine) as fresh:
        return {paper.id: paper for paper in fresh.exec(select(Paper))}


def snapshot(engine: Engine) -> dict[str, dict[str, Any]]:
    return {pid: paper.model_dump() for pid, paper in stored(engine).items()}


def hf_with_upvotes(paper_id: str, upvotes: int) -> bytes:
    """The saved HF fixture with one paper's upvote count changed, as a later fetch of the same day would show."""
    items = json.loads((FIXTURES / HF).read_bytes())
    [item] = [i for i in items if i["paper"]["id"] == paper_id]
    item["paper"]["upvotes"] = upvotes
    return json.dumps(items).encode()


@pytest.mark.parametrize(
    ("fixture", "count"),
    [(ARXIV_RSS, 6), (ARXIV_ATOM, 3), (HF, 4), (BLOG_RSS, 3), (BLOG_ATOM, 3)],
)
def test_ingesting_the_same_feed_twice_adds_nothing(session: Session, engine: Engine, fixture: str, count: int) -> None:
    assert ingest(session, fixture) == (count, 0)
    first = snapshot(engine)
    assert len(first) == count

    assert ingest(session, fixture, now=NOW + timedelta(hours=6)) == (0, 0)

    second = snapshot(engine)
    assert second == first  # not even updated_at moved
    assert {row["updated_at"] for row in second.values()} == {NOW}
    assert {row["first_seen"] for row in second.values()} == {NOW}
    assert {tuple(row["sources"]) for row in second.values()} == {(SOURCES[fixture][1],)}


@pytest.mark.parametrize(
    ("order", "counts"),
    [
        pytest.param([ARXIV_RSS, HF], [(6, 0), (3, 1)], id="arxiv first"),
        pytest.param([HF, ARXIV_RSS], [(4, 0), (5, 1)], id="hf first"),
    ],
)
def test_arxiv_and_hf_copies_of_a_paper_merge_into_one_row(
    session: Session, engine: Engine, order: list[str], counts: list[tuple[int, int]]
) -> None:
    later = NOW + timedelta(hours=1)
    assert ingest(session, order[0], now=NOW) == counts[0]
    assert ingest(session, order[1], now=later) == counts[1]

    rows = stored(engine)
    assert set(rows) == RSS_IDS | HF_IDS
    assert len(rows) == 9

    merged = rows[SHARED]
    assert merged.title == SHARED_TITLE
    assert merged.authors == SHARED_AUTHORS
    assert merged.categories == ["cs.CL", "cs.AI"]  # from arXiv (HF has none)
    assert merged.upvotes == 14  # from HF (arXiv has none)
    assert sorted(merged.sources) == ["arxiv-listing", "hf-daily"]
    assert merged.abs_url == f"https://arxiv.org/abs/{SHARED}"
    assert merged.pdf_url == f"https://arxiv.org/pdf/{SHARED}"
    assert merged.first_seen == NOW
    assert merged.updated_at == later

    # The papers only one source has keep that source's data alone.
    assert rows["2507.48843"].sources == ["hf-daily"]
    assert rows["2507.48843"].upvotes == 131
    assert rows["2507.48843"].categories == []
    assert rows["2402.13718"].sources == ["arxiv-listing"]
    assert rows["2402.13718"].upvotes is None
    assert rows["2402.13718"].categories == ["cs.CL"]


def test_a_later_upvote_count_updates_upvotes_and_updated_at_but_not_first_seen(
    session: Session, engine: Engine
) -> None:
    assert ingest(session, ARXIV_RSS, now=NOW) == (6, 0)
    assert ingest(session, HF, now=NOW + timedelta(hours=1)) == (3, 1)
    before = snapshot(engine)

    refetch = NOW + timedelta(hours=5)
    assert ingest(session, HF, now=refetch, content=hf_with_upvotes(SHARED, 40)) == (0, 1)

    after = snapshot(engine)
    row = after[SHARED]
    assert row["upvotes"] == 40
    assert row["updated_at"] == refetch
    assert row["first_seen"] == NOW  # first seen in the arXiv listing
    assert row["categories"] == ["cs.CL", "cs.AI"]
    assert sorted(row["sources"]) == ["arxiv-listing", "hf-daily"]
    hf_at = int((NOW + timedelta(hours=1)).timestamp())
    assert row["upvote_history"] == [[14, hf_at], [40, int(refetch.timestamp())]]
    changed = ("upvotes", "upvote_history", "updated_at")
    assert {k: v for k, v in row.items() if k not in changed} == {
        k: v for k, v in before[SHARED].items() if k not in changed
    }
    # Every other row is untouched.
    assert {pid: r for pid, r in after.items() if pid != SHARED} == {
        pid: r for pid, r in before.items() if pid != SHARED
    }


def test_a_v2_of_a_paper_maps_to_the_same_row(session: Session, engine: Engine) -> None:
    assert ingest(session, ARXIV_RSS, now=NOW) == (6, 0)  # guid oai:arXiv.org:2505.32774v1
    assert ingest(session, ARXIV_ATOM, now=NOW + timedelta(days=30)) == (1, 2)  # http://arxiv.org/abs/2505.32774v2

    rows = stored(engine)
    assert set(rows) == RSS_IDS | {"2406.12345"}
    assert not [pid for pid in rows if re.search(r"v\d+$", pid)]
    v2 = rows["2505.32774"]
    assert v2.title == "MMLongBench: Benchmarking Long-Context Vision-Language Models Effectively and Thoroughly"
    assert v2.sources == ["arxiv-listing", "arxiv-api"]
    assert v2.categories == ["cs.CV", "cs.CL"]
    assert v2.abs_url == "https://arxiv.org/abs/2505.32774"
    assert v2.pdf_url == "https://arxiv.org/pdf/2505.32774"
    assert v2.first_seen == NOW
    old_style = rows["hep-th/9901001"]  # v1 in the listing, v3 from the API
    assert old_style.sources == ["arxiv-listing", "arxiv-api"]
    assert old_style.categories == ["hep-th", "cs.LG", "math-ph", "math.MP"]


def test_store_papers_maps_versions_given_directly_to_one_row(session: Session, engine: Engine) -> None:
    def version(n: int, upvotes: int) -> ParsedPaper:
        return ParsedPaper(
            id="2406.12345", title=f"Title of v{n}", abstract="A.", authors=["Ada Lovelace"], categories=["cs.CL"],
            published=datetime(2024, 6, 18, 8, 30, tzinfo=UTC), abs_url="https://arxiv.org/abs/2406.12345",
            pdf_url="https://arxiv.org/pdf/2406.12345", upvotes=upvotes,
        )  # fmt: skip

    assert store_papers(session, [version(1, 3)], "hf-daily", NOW) == (1, 0)
    assert store_papers(session, [version(2, 5)], "hf-daily", NOW + timedelta(days=1)) == (0, 1)
    [row] = stored(engine).values()
    assert (row.id, row.title, row.upvotes, row.sources) == ("2406.12345", "Title of v1", 5, ["hf-daily"])


def test_every_stored_field_is_plain_text(session: Session, engine: Engine) -> None:
    for n, fixture in enumerate([ARXIV_RSS, ARXIV_ATOM, HF, BLOG_RSS, BLOG_ATOM]):
        ingest(session, fixture, now=NOW + timedelta(minutes=n))

    rows = stored(engine)
    # 6 listing + 1 new from the API + 3 new from HF + 2 new blog posts + 2 new lab notes
    assert len(rows) == 14
    for row in rows.values():
        texts = [row.id, row.title, row.abstract, row.abs_url, *row.authors, *row.categories, *row.sources]
        texts += [row.pdf_url] if row.pdf_url is not None else []
        for text in texts:
            assert isinstance(text, str)
            assert not TAG_RE.search(text), (row.id, text)
            assert not ENTITY_RE.search(text), (row.id, text)
            assert not CONTROL_RE.search(text), (row.id, text)
            assert text == text.strip(), (row.id, text)
        assert row.title
        assert row.abs_url.startswith("https://")
        assert row.pdf_url is None or row.pdf_url.startswith("https://")

    # The blog post's CDATA description held <p>, <a>, <script>, <img onerror> and &nbsp;.
    kv = rows["https://blog.example.org/2025/11/03/kv-cache-quantization/"]
    assert kv.abstract == "This week we read KVQuant & friends. Quantizing the cache to 3 bits works surprisingly well."
    assert kv.title == "Reading notes: KV cache quantization"
    assert rows["tag:research.example.net,2025:post-101"].title == "Why long context still matters"
    assert rows["2402.13718"].title == (
        "$\\infty$Bench: Extending Long Context Evaluation Beyond 100K Tokens & Naïve Baselines"
    )
    # Blog posts that link to arXiv papers land on the papers' rows.
    assert rows["2506.87888"].sources == ["hf-daily", "reading-group"]
    assert rows["2406.12345"].sources == ["arxiv-api", "lab-notes"]


@pytest.mark.parametrize("flavor", list(FLAVORS))
def test_hostile_title_and_abstract_are_stored_as_plain_text(session: Session, engine: Engine, flavor: str) -> None:
    kind, build, _ = FLAVORS[flavor]
    hostile = entry(
        title="<script>alert(1)</script>Sparse\r\nAttention",
        abstract='Fast. <script>steal()</script><img src=x onerror="alert(2)"> Really.',
    )
    _, new, _ = ingest_bytes(session, build([hostile]).encode(), kind, "hostile", NOW)
    assert new == 1
    [row] = stored(engine).values()
    for text in (row.title, row.abstract):
        assert "<script" not in text.lower() and "<img" not in text.lower() and "onerror" not in text, text
        assert not CONTROL_RE.search(text), text
    assert row.title.endswith("Sparse Attention")


def test_a_blog_post_about_an_arxiv_paper_does_not_become_the_papers_metadata(session: Session, engine: Engine) -> None:
    # The reading-group feed links "Paper of the week: Hierarchical Reasoning Model" to arxiv.org/abs/2506.87888v1
    # and is fetched before Hugging Face lists the paper itself.
    assert ingest(session, BLOG_RSS, now=NOW) == (3, 0)
    ingest(session, HF, now=NOW + timedelta(hours=1))

    row = stored(engine)["2506.87888"]
    assert sorted(row.sources) == ["hf-daily", "reading-group"]
    assert row.upvotes == 57
    assert row.title == "Hierarchical Reasoning Model"
    assert row.authors == [
        "Emma Martin", "Ravi Costa", "Mateo Silva", "Priya Moreau", "Omar Moreau", "Yuki Rossi", "Tomás Dubois",
        "Noor Berg", "Elena Iyer",
    ]  # fmt: skip
    assert row.abstract.startswith("Reasoning, the process of devising")


CLOUDFLARE = (
    b"<!DOCTYPE html><html><head><title>Just a moment...</title></head>"
    b"<body><h1>Checking your browser</h1></body></html>"
)


@pytest.mark.parametrize(
    ("kind", "content"),
    [
        pytest.param(SourceKind.ARXIV_RSS, b"Service Unavailable", id="arxiv-rss: text"),
        pytest.param(SourceKind.ARXIV_ATOM, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", id="arxiv-atom: png"),
        pytest.param(SourceKind.RSS, (FIXTURES / HF).read_bytes(), id="rss: json"),
        pytest.param(SourceKind.ARXIV_RSS, CLOUDFLARE, id="arxiv-rss: html challenge page"),
        pytest.param(SourceKind.RSS, CLOUDFLARE, id="rss: html challenge page"),
        pytest.param(SourceKind.HF_JSON, (FIXTURES / ARXIV_RSS).read_bytes(), id="hf-json: rss"),
        pytest.param(SourceKind.HF_JSON, b'{"error": "Invalid date"}', id="hf-json: error object"),
        pytest.param(SourceKind.HF_JSON, CLOUDFLARE, id="hf-json: html"),
    ],
)
def test_ingest_bytes_rejects_non_feed_bytes_and_stores_nothing(
    session: Session, engine: Engine, kind: SourceKind, content: bytes
) -> None:
    ingest(session, BLOG_RSS)
    before = snapshot(engine)
    assert len(before) == 3

    with pytest.raises(FeedError):
        ingest_bytes(session, content, kind, "broken", NOW + timedelta(hours=1))

    assert snapshot(engine) == before
    # The session is still usable afterwards.
    assert ingest(session, HF, now=NOW + timedelta(hours=2)) == (3, 1)


@pytest.mark.parametrize("guid", ["2406.12345", "arXiv:2406.12345", "https://arxiv.org/abs/2406.12345v2"])
def test_a_generic_feed_cannot_give_an_arxiv_paper_its_own_link(session: Session, engine: Engine, guid: str) -> None:
    blog = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title>'
        f'<item><title>Free download</title><guid isPermaLink="false">{guid}</guid>'
        "<link>https://evil.example/landing</link><description>Click here.</description></item>"
        "<item><title>Our own post</title><link>https://blog.example.org/posts/7</link></item>"
        "</channel></rss>"
    )
    ingest_bytes(session, blog.encode(), SourceKind.RSS, "reading-group", NOW)
    rows = stored(engine)
    paper = rows["2406.12345"]
    assert (paper.abs_url, paper.pdf_url) == ("https://arxiv.org/abs/2406.12345", "https://arxiv.org/pdf/2406.12345")
    assert not paper.authoritative  # arXiv's own description replaces the blog's when it arrives
    # A generic feed's links stay on its own entries.
    assert rows["https://blog.example.org/posts/7"].abs_url == "https://blog.example.org/posts/7"


# --------------------------------------------------------------------------------------------------------------------
# Popularity that keeps counting: upvote histories, and the flags that say who described a paper
# --------------------------------------------------------------------------------------------------------------------

REFRESH_DAY = FIXTURES / "hf_refresh" / "2026-11-28.json"  # two papers Hugging Face listed two days before NOW
CLIMBING, FALLING = "2611.21437", "2611.20981"


def refresh_day(counts: dict[str, int]) -> bytes:
    """The saved day with the upvote counts a later read of it shows."""
    items = json.loads(REFRESH_DAY.read_bytes())
    for item in items:
        item["paper"]["upvotes"] = counts[item["paper"]["id"]]
    return json.dumps(items).encode()


def at(when: datetime) -> int:
    return int(when.timestamp())


def test_a_dated_source_rereads_its_earlier_days_and_the_counts_keep_counting(
    http_server: HTTPTestServer, settings: Settings, engine: Engine
) -> None:
    # Today's list does not change (answered 304 once we hold its ETag); two days ago, the counts move.
    http_server.feed("/api/daily_papers?date=2026-11-30", b"[]", etag='"today"')
    http_server.route("/api/daily_papers?date=2026-11-29", b"[]")
    http_server.route("/api/daily_papers?date=2026-11-27", b"[]")
    counts = {CLIMBING: 5, FALLING: 40}
    http_server.route("/api/daily_papers?date=2026-11-28", handler=lambda _request: Response(200, refresh_day(counts)))
    source = SourceConfig(
        name="hf", kind=SourceKind.HF_JSON, url=http_server.url("/api/daily_papers?date={date}"), days_back=3
    )
    # Without an arXiv API URL the enrichment step is off: this test is about the counts alone.
    settings = settings.model_copy(update={"sources": [source], "arxiv_api_url": ""})
    runs = [NOW, NOW + timedelta(hours=1), NOW + timedelta(hours=2)]
    steps = [
        ({CLIMBING: 5, FALLING: 40}, (2, 0)),
        ({CLIMBING: 30, FALLING: 35}, (0, 2)),
        ({CLIMBING: 120, FALLING: 35}, (0, 1)),
    ]

    for run, (served, changed) in zip(runs, steps, strict=True):
        counts.update(served)
        with open_session(engine) as session:
            [report] = fetch_all(session, settings, run)
        assert (report.ok, report.new, report.updated) == (True, *changed)
        rows = stored(engine)
        assert {pid: rows[pid].upvotes for pid in counts} == served

    rows = stored(engine)
    assert rows[CLIMBING].upvote_history == [[5, at(runs[0])], [30, at(runs[1])], [120, at(runs[2])]]
    assert rows[FALLING].upvote_history == [[40, at(runs[0])]]  # a lower count adds nothing
    assert rows[CLIMBING].first_seen == rows[FALLING].first_seen == NOW
    assert rows[CLIMBING].updated_at == runs[2] and rows[FALLING].updated_at == runs[1]
    assert all(row.on_hf and row.needs_arxiv for row in rows.values())
    # Every run read all four days; from the second on, today's list was answered 304 and the others still read.
    for day in ("2026-11-30", "2026-11-29", "2026-11-28", "2026-11-27"):
        assert len(http_server.requests_to(f"/api/daily_papers?date={day}")) == 3, day
    assert [r.headers.get("If-None-Match") for r in http_server.requests_to("/api/daily_papers?date=2026-11-30")] == [
        None, '"today"', '"today"',
    ]  # fmt: skip

    # The same counts once more: nothing changes, not even updated_at.
    before = snapshot(engine)
    with open_session(engine) as session:
        [again] = fetch_all(session, settings, NOW + timedelta(hours=3))
    assert (again.ok, again.new, again.updated, again.parsed) == (True, 0, 0, 2)
    assert snapshot(engine) == before


def hf_paper(pid: str = "2406.12345", upvotes: int | None = 3, *, on_hf: bool = True) -> ParsedPaper:
    abs_url, pdf_url = f"https://arxiv.org/abs/{pid}", f"https://arxiv.org/pdf/{pid}"
    return ParsedPaper(
        id=pid, title="Draft trees", abstract="A.", authors=["Ada Lovelace"], categories=[], published=None,
        abs_url=abs_url, pdf_url=pdf_url, upvotes=upvotes, on_hf=on_hf,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("counts", "history"),
    [
        pytest.param([3, 3, 3], [(3, 0)], id="unchanged"),
        pytest.param([3, 9, 4, 9, 12], [(3, 0), (9, 1), (12, 4)], id="rises recorded, dips and repeats not"),
        pytest.param([0, 1], [(0, 0), (1, 1)], id="from zero"),
        pytest.param([None, 7, None, 8], [(7, 1), (8, 3)], id="unknown counts skipped"),
    ],
)
def test_the_history_records_each_new_high(
    session: Session, engine: Engine, counts: list[int | None], history: list[tuple[int, int]]
) -> None:
    for hour, count in enumerate(counts):
        store_papers(session, [hf_paper(upvotes=count)], "hf", NOW + timedelta(hours=hour))
    [row] = stored(engine).values()
    assert row.upvote_history == [[count, at(NOW + timedelta(hours=hour))] for count, hour in history]
    assert row.upvotes == next(c for c in reversed(counts) if c is not None)


def test_a_row_stored_before_histories_starts_from_the_count_it_had(session: Session, engine: Engine) -> None:
    store_papers(session, [hf_paper(upvotes=12)], "hf", NOW)
    legacy = session.get(Paper, "2406.12345")
    assert legacy is not None
    legacy.upvote_history = []  # as migration 0005 left every row
    session.add(legacy)
    session.commit()

    assert store_papers(session, [hf_paper(upvotes=10)], "hf", NOW + timedelta(hours=1)) == (0, 1)
    assert stored(engine)["2406.12345"].upvote_history == [[12, at(NOW)]]
    store_papers(session, [hf_paper(upvotes=20)], "hf", NOW + timedelta(hours=2))
    row = stored(engine)["2406.12345"]
    assert (row.upvotes, row.upvote_history) == (20, [[12, at(NOW)], [20, at(NOW + timedelta(hours=2))]])


def test_the_history_is_bounded_and_keeps_its_first_and_newest_entries(session: Session, engine: Engine) -> None:
    # Rises of 1 every other time and of 10 otherwise: past the bound, the smallest rises go first.
    count, expected_top = 0, 0
    for hour in range(MAX_HISTORY + 20):
        count += 10 if hour % 2 else 1
        store_papers(session, [hf_paper(upvotes=count)], "hf", NOW + timedelta(hours=hour))
        expected_top = count
    [row] = stored(engine).values()
    history = row.upvote_history
    assert len(history) == MAX_HISTORY
    assert history[0] == [1, at(NOW)]
    assert history[-1] == [expected_top, at(NOW + timedelta(hours=MAX_HISTORY + 19))]
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in pairwise(history))
    rises = [b[0] - a[0] for a, b in pairwise(history)]
    assert rises.count(11) == 20  # twenty rises of 1 were dropped, each merged into the rise of 10 after it


@pytest.mark.parametrize(
    ("order", "pid", "on_hf", "needs_arxiv"),
    [
        pytest.param([HF], SHARED, True, True, id="hf only: waits for arXiv"),
        pytest.param([HF, ARXIV_RSS], SHARED, True, False, id="hf, then the arXiv listing"),
        pytest.param([ARXIV_RSS, HF], SHARED, True, False, id="arXiv listing, then hf"),
        pytest.param([BLOG_RSS, HF], "2506.87888", True, True, id="a blog post, then hf: no arXiv description yet"),
        pytest.param([ARXIV_RSS], SHARED, False, False, id="arXiv only"),
        pytest.param([BLOG_RSS], "2506.87888", False, False, id="a blog post only"),
    ],
)
def test_on_hf_and_needs_arxiv_follow_who_described_the_paper(
    session: Session, engine: Engine, order: list[str], pid: str, on_hf: bool, needs_arxiv: bool
) -> None:
    for n, fixture in enumerate(order):
        ingest(session, fixture, now=NOW + timedelta(hours=n))
    row = stored(engine)[pid]
    assert (row.on_hf, row.needs_arxiv) == (on_hf, needs_arxiv)


def test_on_hf_is_never_reset_and_a_done_paper_is_not_asked_again(session: Session, engine: Engine) -> None:
    ingest(session, HF, now=NOW)
    done = session.get(Paper, "2509.54410")
    assert done is not None and done.needs_arxiv
    done.needs_arxiv = False  # as the enrichment leaves a paper arXiv does not know
    session.add(done)
    session.commit()

    ingest(session, HF, now=NOW + timedelta(hours=1), content=hf_with_upvotes("2509.54410", 3))
    ingest(session, BLOG_RSS, now=NOW + timedelta(hours=2))
    rows = stored(engine)
    assert (rows["2509.54410"].on_hf, rows["2509.54410"].needs_arxiv, rows["2509.54410"].upvotes) == (True, False, 3)
    assert rows["2506.87888"].on_hf and rows["2506.87888"].needs_arxiv


def test_a_paper_whose_text_changes_is_embedded_again_and_only_then(session: Session, engine: Engine) -> None:
    def described(title: str, abstract: str, *, authoritative: bool, upvotes: int | None = None) -> ParsedPaper:
        return ParsedPaper(
            id="2406.12345", title=title, abstract=abstract, authors=["Ada Lovelace"], categories=[],
            published=None, abs_url="https://arxiv.org/abs/2406.12345", pdf_url=None, upvotes=upvotes,
            authoritative=authoritative,
        )  # fmt: skip

    store_papers(session, [described("A blog's title", "A blog's words.", authoritative=False)], "blog", NOW)
    row = session.get(Paper, "2406.12345")
    assert row is not None
    row.embedding, row.embedding_model = b"\x00\x3c" * 384, "minilm-int8"
    session.add(row)
    session.commit()
    # Only the upvotes change: the vector still describes the text.
    store_papers(session, [described("A blog's title", "A blog's words.", authoritative=False, upvotes=3)], "b", NOW)
    assert stored(engine)["2406.12345"].embedding_model == "minilm-int8"
    # arXiv's own description replaces the blog's: the old vector is dropped, to be made again.
    store_papers(session, [described("The real title", "The real abstract.", authoritative=True)], "arxiv", NOW)
    again = stored(engine)["2406.12345"]
    assert (again.title, again.embedding, again.embedding_model) == ("The real title", None, None)
