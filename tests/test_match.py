"""Tables for matching and ranking: which papers a topic finds, and in what order a reader gets them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from digest.match import PaperIndex, annotate, pick, select
from digest.models import Preferences
from digest.query import parse_query

T0 = datetime(2026, 11, 29, 0, 0, tzinfo=UTC)


@dataclass
class P:
    """A paper as matching sees it (satisfies `PaperLike`)."""

    id: str
    title: str = ""
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    published: datetime | None = None
    upvotes: int | None = None
    first_seen: datetime = T0
    upvote_history: list[list[int]] = field(default_factory=list)
    on_hf: bool = False
    embedding: bytes | None = None
    embedding_model: str | None = None


CORPUS = [
    P("concat", "Concatenate all the things", "We concatenate tensors.", ["Ann Lee"], ["cs.LG"]),
    P("cats", "A detector for house cats", "Finding a cat in an image.", ["Bo Chen"], ["cs.CV"]),
    P("rag", "RAG for question answering", "Retrieval with a reader.", ["Cy Diaz"], ["cs.CL", "cs.IR"]),
    P("frag", "Fragment assembly", "Fragments of DNA are joined.", ["Di Ekko"], ["q-bio.GN"]),
    P(
        "kvcache",
        "Compressing the KV-cache",
        "Long contexts need large caches for every query.",
        ["Yann LeCun", "Maria Pérez"],
        ["cs.CL"],
    ),
    P("kvstore", "Cache eviction for KV stores", "A key value database.", ["Ed Fox"], ["cs.DB"]),
    P(
        "judges",
        "Large language models as judges",
        "An LLM ranks queries about model quality.",
        ["Grace Yann", "LeCun Zhao"],
        ["cs.CL", "cs.AI"],
    ),
    P("survey", "A survey of diffusion models", "We review diffusion for images.", ["Hu Ito"], ["cs.LG"]),
    P("distill", "Diffusion distillation", "Fewer sampling steps.", ["Ivo Jun"], ["CS.CV"]),
    P("abstract", "Image synthesis", "We train a diffusion model on faces.", ["Jo Kim"], ["cs.CV", "math.OC"]),
]


@pytest.fixture(scope="module")
def index() -> PaperIndex:
    return PaperIndex(CORPUS)


def ids(index: PaperIndex, mask: int) -> set[str]:
    return {p.id for i, p in enumerate(index.papers) if mask >> i & 1}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # Case-insensitive, whole words only.
        ("cat", {"cats"}),
        ("CAT", {"cats"}),
        ("cats", {"cats"}),
        ("concatenate", {"concat"}),
        ("rag", {"rag"}),
        ("RAG", {"rag"}),
        ("fragment", {"frag"}),
        ("fragments", {"frag"}),
        ("frag", set()),
        # Plural and singular fold both ways.
        ("model", {"judges", "survey", "abstract"}),
        ("models", {"judges", "survey", "abstract"}),
        ("LLMs", {"judges"}),
        ("query", {"kvcache", "judges"}),
        ("queries", {"kvcache", "judges"}),
        ("cache", {"kvcache", "kvstore"}),
        ("caches", {"kvcache", "kvstore"}),
        # Phrases: across hyphens, adjacent words only, in order.
        ('"kv cache"', {"kvcache"}),
        ("KV-cache", {"kvcache"}),
        ("kv-caches", {"kvcache"}),
        ("kv cache", {"kvcache", "kvstore"}),
        ('"cache kv"', set()),
        ('"large language models"', {"judges"}),
        ('"large models"', set()),
        ('"key value"', {"kvstore"}),
        ("key-value", {"kvstore"}),
        # Field prefixes.
        ("title:diffusion", {"survey", "distill"}),
        ("abstract:diffusion", {"survey", "abstract"}),
        ("diffusion", {"survey", "distill", "abstract"}),
        ("title:caches", {"kvcache", "kvstore"}),
        ("abstract:cache", {"kvcache"}),
        ("title:(rag OR fragment)", {"rag", "frag"}),
        ("author:lecun", {"kvcache", "judges"}),
        ("author:yann", {"kvcache", "judges"}),
        ('author:"yann lecun"', {"kvcache"}),
        ('author:"Yann LeCun"', {"kvcache"}),
        ('author:"lecun yann"', set()),
        # Unprefixed words search the title and abstract, not the author list.
        ("lecun", set()),
        # Accents fold.
        ("author:perez", {"kvcache"}),
        ("author:PÉREZ", {"kvcache"}),
        ('author:"maria perez"', {"kvcache"}),
        # Categories: exact and prefix, case-insensitive.
        ("cat:cs.CL", {"kvcache", "rag", "judges"}),
        ("cat:CS.cl", {"kvcache", "rag", "judges"}),
        ("cat:cs.C", set()),
        ("cat:cs.CV", {"cats", "distill", "abstract"}),
        ("cat:cs.*", {"concat", "cats", "rag", "kvcache", "kvstore", "judges", "survey", "distill", "abstract"}),
        ("cat:q-bio.*", {"frag"}),
        ("cat:math.OC", {"abstract"}),
        ("cat:(cs.IR OR cs.DB)", {"rag", "kvstore"}),
        # NOT, -word, OR, parentheses.
        ("diffusion -survey", {"distill", "abstract"}),
        ("diffusion NOT survey", {"distill", "abstract"}),
        ("diffusion -title:diffusion", {"abstract"}),
        ("diffusion -cat:cs.CV", {"survey"}),
        ('cache -"kv cache"', {"kvstore"}),
        ("rag OR fragment", {"rag", "frag"}),
        ("cat:cs.CL (cache OR judges)", {"kvcache", "judges"}),
        ("(diffusion OR cat) cat:cs.CV", {"cats", "distill", "abstract"}),
        ("diffusion OR cat cat:cs.LG", {"survey", "distill", "abstract"}),
        ("nothing-matches-this", set()),
    ],
)
def test_topic_matches(index: PaperIndex, query: str, expected: set[str]) -> None:
    assert ids(index, index.evaluate(parse_query(query))) == expected
    compiled = index.topic(query)
    assert compiled is not None
    assert ids(index, compiled.mask) == expected


def test_author_phrase_never_spans_two_authors() -> None:
    index = PaperIndex([P("two", "x", "y", ["Grace Yann", "LeCun Zhao"]), P("one", "x", "y", ["Yann LeCun"])])
    assert ids(index, index.evaluate(parse_query('author:"yann lecun"'))) == {"one"}
    assert ids(index, index.evaluate(parse_query("author:yann author:lecun"))) == {"one", "two"}


def test_phrase_never_spans_title_and_abstract() -> None:
    index = PaperIndex([P("p", "Efficient KV", "Cache layouts")])
    assert ids(index, index.evaluate(parse_query('"kv cache"'))) == set()
    assert ids(index, index.evaluate(parse_query("kv cache"))) == {"p"}


def test_invalid_topic_compiles_to_none(index: PaperIndex) -> None:
    assert index.topic("(") is None
    assert index.topic("foo:bar") is None
    assert index.topic("-survey") is None


def at(days: int) -> datetime:
    return T0 + timedelta(days=days)


RANKING = [
    pytest.param(
        [P("abs", abstract="diffusion", upvotes=100), P("tit", title="diffusion", upvotes=0)],
        "diffusion",
        ["tit", "abs"],
        id="title hit above abstract-only hit",
    ),
    pytest.param(
        [P("abs", abstract="diffusion", upvotes=100), P("auth", authors=["Ada Diffusion"], abstract="diffusion")],
        "author:diffusion OR diffusion",
        ["auth", "abs"],
        id="author hit counts like a title hit",
    ),
    pytest.param(
        [P("abs", abstract="diffusion", upvotes=100), P("auth", authors=["Ada Diffusion"], abstract="diffusion")],
        "diffusion",
        ["abs", "auth"],
        id="an author's name is not a hit for a plain word",
    ),
    pytest.param(
        [
            P("one", title="diffusion", upvotes=50, published=at(5)),
            P("two", title="diffusion distillation", upvotes=1, published=at(1)),
        ],
        "diffusion OR distillation",
        ["two", "one"],
        id="more title hits first",
    ),
    pytest.param(
        [
            P("title-only", title="diffusion", upvotes=50),
            P("both", title="diffusion", abstract="diffusion", upvotes=1),
        ],
        "diffusion",
        ["both", "title-only"],
        id="then more abstract hits",
    ),
    pytest.param(
        [
            P("abs1", abstract="diffusion", upvotes=90),
            P("abs2", abstract="diffusion distillation", upvotes=1),
        ],
        "diffusion OR distillation",
        ["abs2", "abs1"],
        id="more abstract hits first",
    ),
    pytest.param(
        [
            P("few", title="diffusion", upvotes=5, published=at(9)),
            P("many", title="diffusion", upvotes=50, published=at(1)),
            P("unknown", title="diffusion", upvotes=None, published=at(10)),
            P("one", title="diffusion", upvotes=1, published=at(0)),
        ],
        "diffusion",
        ["many", "few", "one", "unknown"],
        id="then upvotes, unknown counting as none",
    ),
    pytest.param(
        [
            P("old", title="diffusion", upvotes=3, published=at(1)),
            P("new", title="diffusion", upvotes=3, published=at(3)),
            P("mid", title="diffusion", upvotes=3, published=at(2)),
        ],
        "diffusion",
        ["new", "mid", "old"],
        id="then newer published first",
    ),
    pytest.param(
        [
            P("dated", title="diffusion", published=at(2), first_seen=at(0)),
            P("undated", title="diffusion", published=None, first_seen=at(3)),
        ],
        "diffusion",
        ["undated", "dated"],
        id="unpublished falls back to first seen",
    ),
    pytest.param(
        [P("b", title="diffusion"), P("a", title="diffusion"), P("c", title="diffusion")],
        "diffusion",
        ["a", "b", "c"],
        id="full tie broken by id",
    ),
]


@pytest.mark.parametrize(("papers", "topic", "expected"), RANKING)
def test_ranking(papers: list[P], topic: str, expected: list[str]) -> None:
    index = PaperIndex(papers)
    selection = select(index, [topic], candidates=index.all)
    assert [m.paper.id for m in selection.matches] == expected
    assert selection.more == 0


def test_hit_counts(index: PaperIndex) -> None:
    selection = select(index, ["diffusion OR models"], candidates=index.all)
    hits = {m.paper.id: (m.title_hits, m.abstract_hits) for m in selection.matches}
    assert hits == {"survey": (2, 1), "distill": (1, 0), "judges": (1, 1), "abstract": (0, 2)}
    assert [m.paper.id for m in selection.matches] == ["survey", "judges", "distill", "abstract"]


FIVE = [P(f"p{n}", title="diffusion", upvotes=n, first_seen=at(n)) for n in range(5)]


@pytest.mark.parametrize(
    ("cap", "expected", "more"),
    [
        (25, ["p4", "p3", "p2", "p1", "p0"], 0),
        (5, ["p4", "p3", "p2", "p1", "p0"], 0),
        (4, ["p4", "p3", "p2", "p1"], 1),
        (2, ["p4", "p3"], 3),
        (1, ["p4"], 4),
        (0, [], 5),
    ],
)
def test_select_cap(cap: int, expected: list[str], more: int) -> None:
    index = PaperIndex(FIVE)
    selection = select(index, ["diffusion"], candidates=index.all, cap=cap)
    assert [m.paper.id for m in selection.matches] == expected
    assert selection.more == more


VOTES = [
    P("none", title="diffusion", upvotes=None),
    P("zero", title="diffusion", upvotes=0),
    P("three", title="diffusion", upvotes=3),
    P("ten", title="diffusion", upvotes=10),
]


@pytest.mark.parametrize(
    ("min_upvotes", "expected"),
    [
        (None, ["ten", "three", "none", "zero"]),
        (1, ["ten", "three"]),
        (3, ["ten", "three"]),
        (4, ["ten"]),
        (10, ["ten"]),
        (11, []),
    ],
)
def test_select_min_upvotes(min_upvotes: int | None, expected: list[str]) -> None:
    index = PaperIndex(VOTES)
    selection = select(index, ["diffusion"], candidates=index.all, min_upvotes=min_upvotes)
    assert [m.paper.id for m in selection.matches] == expected


def test_at_least_excludes_unknown_upvotes() -> None:
    index = PaperIndex(VOTES)
    assert ids(index, index.at_least(0)) == {"zero", "three", "ten"}
    assert ids(index, index.at_least(3)) == {"three", "ten"}


SEEN = [P(f"d{n}", title="diffusion", first_seen=at(n)) for n in (4, 0, 3, 1, 2)]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (at(0), at(5), {"d0", "d1", "d2", "d3", "d4"}),
        (at(1), at(3), {"d1", "d2"}),
        (at(1) - timedelta(seconds=1), at(1) + timedelta(seconds=1), {"d1"}),
        (at(1) + timedelta(seconds=1), at(2), set()),
        (at(4), at(9), {"d4"}),
        (at(-9), at(0), set()),
        (at(3), at(3), set()),
    ],
)
def test_window(start: datetime, end: datetime, expected: set[str]) -> None:
    index = PaperIndex(SEEN)
    window = index.window(start, end)
    assert ids(index, window) == expected
    selection = select(index, ["diffusion"], candidates=window)
    assert {m.paper.id for m in selection.matches} == expected


def test_candidates_combine_with_min_upvotes() -> None:
    papers = [P(f"v{n}", title="rag", upvotes=n, first_seen=at(n)) for n in range(6)]
    index = PaperIndex(papers)
    selection = select(index, ["rag"], candidates=index.window(at(1), at(5)), min_upvotes=3)
    assert [m.paper.id for m in selection.matches] == ["v4", "v3"]


@pytest.mark.parametrize(
    ("topics", "expected"),
    [
        (
            ["diffusion", "cat:cs.CV"],
            {
                "survey": ("diffusion",),
                "distill": ("diffusion", "cat:cs.CV"),
                "abstract": ("diffusion", "cat:cs.CV"),
                "cats": ("cat:cs.CV",),
            },
        ),
        (
            ["cat:cs.CV", "diffusion"],
            {
                "survey": ("diffusion",),
                "distill": ("cat:cs.CV", "diffusion"),
                "abstract": ("cat:cs.CV", "diffusion"),
                "cats": ("cat:cs.CV",),
            },
        ),
        # Invalid topics are skipped, not fatal.
        (["(", "rag", "foo:bar", "-survey", ""], {"rag": ("rag",)}),
        (["(", "foo:bar"], {}),
        ([], {}),
    ],
)
def test_select_topics(index: PaperIndex, topics: list[str], expected: dict[str, tuple[str, ...]]) -> None:
    selection = select(index, topics, candidates=index.all)
    assert {m.paper.id: m.topics for m in selection.matches} == expected
    assert selection.more == 0


def test_two_topics_add_their_hits(index: PaperIndex) -> None:
    selection = select(index, ["diffusion", "distillation"], candidates=index.all)
    distill = next(m for m in selection.matches if m.paper.id == "distill")
    assert (distill.title_hits, distill.abstract_hits) == (2, 0)
    assert [m.paper.id for m in selection.matches] == ["distill", "survey", "abstract"]


@pytest.mark.parametrize(
    ("topics", "paper", "expected"),
    [
        (["KV-cache"], "kvcache", {("kv", "cach")}),
        (["Compressing KV-caches -survey"], "kvcache", {("compressing",), ("kv", "cach")}),
        (["title:cache author:lecun"], "kvcache", {("cach",)}),
        (['"large language models"'], "judges", {("larg", "languag", "model")}),
        (["diffusion", "cat:cs.CV"], "distill", {("diffusion",)}),
        (["cat:cs.CV"], "distill", set()),
        (["rag OR fragment"], "rag", {("rag",)}),  # "fragment" is not in that paper: nothing to show
        (["rag", "RAGs"], "rag", {("rag",)}),
    ],
)
def test_highlight(index: PaperIndex, topics: list[str], paper: str, expected: set[tuple[str, ...]]) -> None:
    """`Match.highlight` holds the normalized words of each positive term that occurs in the paper's
    title or abstract, a phrase as one tuple."""
    selection = select(index, topics, candidates=index.all)
    match = next(m for m in selection.matches if m.paper.id == paper)
    assert match.highlight == frozenset(expected)


@pytest.mark.parametrize(
    ("paper_ids", "expected"),
    [
        (["survey", "abstract", "distill"], ["survey", "abstract", "distill"]),
        (["distill", "missing", "survey"], ["distill", "survey"]),
        (["abstract"], ["abstract"]),
        ([], []),
    ],
)
def test_annotate_keeps_the_stored_order(index: PaperIndex, paper_ids: list[str], expected: list[str]) -> None:
    matches = annotate(index, ["diffusion", "cat:cs.CV"], paper_ids)
    assert [m.paper.id for m in matches] == expected
    by_id = {m.paper.id: m for m in matches}
    if "distill" in by_id:
        assert by_id["distill"].topics == ("diffusion", "cat:cs.CV")
        assert by_id["distill"].title_hits == 1


def test_annotate_of_a_paper_no_longer_matching() -> None:
    index = PaperIndex([P("x", title="Something else")])
    [match] = annotate(index, ["diffusion"], ["x"])
    assert match.topics == ()
    assert (match.title_hits, match.abstract_hits) == (0, 0)
    assert match.highlight == frozenset()


# --- trending, popularity over time, and saying why -------------------------------------------

H = timedelta(hours=1)
WEEK = timedelta(days=7)
HOT = [
    P("h1", "Agents that plan", upvotes=120, first_seen=T0, on_hf=True),
    P("h2", "Agents that act", upvotes=40, first_seen=T0 + H, on_hf=True),
    P("h3", "Protein design", upvotes=300, first_seen=T0 + 2 * H, on_hf=True),
    P("h4", "Old but loved", upvotes=500, first_seen=T0 - timedelta(days=3), on_hf=True),
    P("a1", "Agents on arXiv", upvotes=None, first_seen=T0 + H),
]


def _prefs(topics: list[str], trending: int | None = None, min_upvotes: int | None = None) -> Preferences:
    return Preferences(topics, trending=trending, min_upvotes=min_upvotes)


@pytest.mark.parametrize(
    ("prefs", "trending", "topical"),
    [
        (_prefs([], trending=2), ["h3", "h1"], []),  # top N of the window by upvotes, on HF only
        (_prefs([], trending=10), ["h3", "h1", "h2"], []),  # fewer papers than N: all of them
        (_prefs(["agents"]), [], ["h1", "h2", "a1"]),
        (_prefs(["agents"], trending=1), ["h3"], ["h1", "h2", "a1"]),
        (_prefs(["agents"], trending=2), ["h3", "h1"], ["h2", "a1"]),  # never a paper twice
        (_prefs(["agents"], min_upvotes=50), [], ["h1"]),
    ],
)
def test_pick_trending_and_topics(prefs: Preferences, trending: list[str], topical: list[str]) -> None:
    index = PaperIndex(HOT)
    picked = pick(index, prefs, T0, T0 + 5 * H, lookback=WEEK)
    assert [m.paper.id for m in picked.trending] == trending
    assert [m.rank for m in picked.trending] == list(range(1, len(trending) + 1))
    assert [m.paper.id for m in picked.topical.matches] == topical
    bare = pick(PaperIndex(HOT), prefs, T0, T0 + 5 * H, lookback=WEEK, explain=False)  # what a send records
    assert [m.paper.id for m in bare.matches] == [m.paper.id for m in picked.matches]
    assert [m.rank for m in bare.trending] == [m.rank for m in picked.trending]
    assert all(m.topics == () and m.reasons == () and m.highlight == frozenset() for m in bare.matches)
    assert all(m.reasons for m in picked.topical.matches)


def test_pick_leaves_out_what_the_reader_was_already_sent() -> None:
    index = PaperIndex(HOT)
    sent = index.mask_of_ids(["h3", "a1", "not-in-the-index"])
    picked = pick(index, _prefs(["agents"], trending=1), T0, T0 + 5 * H, lookback=WEEK, exclude=sent)
    assert [m.paper.id for m in picked.matches] == ["h1", "h2"]


def test_trending_looks_a_day_back_for_papers_that_arrived_just_before_the_last_digest() -> None:
    late = P("late", "Late arrival", upvotes=90, first_seen=T0 - 2 * H, on_hf=True)
    index = PaperIndex([*HOT, late])
    picked = pick(index, _prefs([], trending=3), T0, T0 + 5 * H, lookback=WEEK)
    assert [m.paper.id for m in picked.trending] == ["h3", "h1", "late"]  # h4 is three days old: out


def test_a_minimum_is_met_when_the_count_first_reaches_it_within_the_lookback() -> None:
    seen = T0
    climb = [[count, int((seen + after).timestamp())] for count, after in ((5, 0 * H), (60, 10 * H), (400, 9 * 24 * H))]
    papers = [P("c", "Climbing agents", upvotes=400, first_seen=seen, upvote_history=climb, on_hf=True)]
    index = PaperIndex(papers)
    day1, day2 = (seen, seen + 24 * H), (seen + 24 * H, seen + 48 * H)
    assert index.eligible(50, *day1, WEEK) == 1 and index.eligible(50, *day2, WEEK) == 0  # 60 at +10 h
    assert (
        index.eligible(50, seen, seen + 9 * H, WEEK) == 0 and index.eligible(50, seen + 9 * H, seen + 11 * H, WEEK) == 1
    )
    assert index.eligible(4, seen, seen + H, WEEK) == 1  # met at once: eligible from first seen
    assert all(index.eligible(300, seen + n * 24 * H, seen + (n + 1) * 24 * H, WEEK) == 0 for n in range(12))
    # A row stored before upvotes were tracked: its count stands from when it was first seen.
    legacy = PaperIndex([P("l", "Legacy", upvotes=70, first_seen=seen)])
    assert legacy.eligible(50, *day1, WEEK) == 1 and legacy.eligible(80, *day1, WEEK) == 0


@pytest.mark.parametrize(
    ("topic", "paper", "reason"),
    [
        ('"KV cache" OR agents', "judges", ""),  # not matched at all: no reason asked
        ('"KV cache" OR diffusion', "survey", "diffusion"),  # the alternative that matched, not the first
        ('"KV cache" OR diffusion', "kvcache", "KV cache"),
        ('(cats OR "KV cache") cache -survey', "kvcache", "KV cache cache"),
        ("author:LeCun OR diffusion", "kvcache", "LeCun"),
    ],
)
def test_the_reason_names_the_alternative_that_matched(index: PaperIndex, topic: str, paper: str, reason: str) -> None:
    chosen = select(index, [topic], candidates=index.all, cap=20).matches
    found = {m.paper.id: m.reasons for m in chosen}
    assert found.get(paper, ("",)) == (reason,)


def test_author_matches_name_the_authors(index: PaperIndex) -> None:
    (match,) = select(index, ["author:LeCun"], candidates=index.mask_of_ids(["kvcache"]), cap=5).matches
    assert match.authors_hit == frozenset({0})
    many = P("many", "x", "y", ["A One", "B Two", "C Three", "D Four", "E Five", "Yann LeCun", "G Seven"])
    (deep,) = select(PaperIndex([many]), ['author:"Yann LeCun"'], candidates=1, cap=5).matches
    assert deep.authors_hit == frozenset({5})


def test_topic_cache_stays_bounded_and_keeps_shared_topics(monkeypatch: pytest.MonkeyPatch) -> None:
    """A day of readers each with their own topic must not grow a worker's memory without bound:
    a full topic cache forgets the one-reader topics and keeps the ones readers share, and every
    topic still matches the same papers after it was forgotten."""
    monkeypatch.setattr("digest.match.TOPIC_CACHE_MAX", 6)
    index = PaperIndex(CORPUS)
    shared = index.topic("diffusion")
    assert index.topic("diffusion") is shared  # a second reader: now shared
    one_off = ["cat", "rag", "cache", "judges", "survey", "faces", "tensors", "dna"]
    expected = {text: ids(index, parse_mask(text)) for text in one_off}
    for text in one_off:
        compiled = index.topic(text)
        assert compiled is not None
        assert ids(index, compiled.mask) == expected[text]
        assert len(index._topics) <= 6
    assert index.topic("diffusion") is shared  # never evicted while readers share it
    again = index.topic("cat")  # forgotten, compiled afresh, same papers
    assert again is not None and ids(index, again.mask) == expected["cat"]


def parse_mask(text: str) -> int:
    compiled = PaperIndex(CORPUS).topic(text)
    assert compiled is not None
    return compiled.mask
