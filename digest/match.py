"""Matching: index the papers' words once, evaluate each distinct topic once, rank per reader.

Sets of papers are Python ints used as bitsets (bit i = paper i), so AND/OR/NOT over a few
thousand papers are single integer operations, and a topic shared by many readers costs once.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from itertools import islice
from typing import Any, Protocol

import numpy as np

from digest.models import DEFAULT_PREFERENCES, Preferences
from digest.query import (
    And,
    Category,
    Like,
    Node,
    Not,
    Or,
    QueryError,
    Term,
    label,
    parse_query,
    positive_likes,
    positive_terms,
)
from digest.rank import RECOMMEND_MIN, RECOMMENDED_MAX, Learned
from digest.semantic import LikeHits, PaperVectors, Semantics, like_hits, like_reason, mask_of_flags, strong_at
from digest.text import normalize, raw_words

# Gap between authors' positions so a phrase never spans two names.
_AUTHOR_GAP = 1000


class PaperLike(Protocol):
    """What matching needs of a paper (the `Paper` table satisfies it)."""

    @property
    def id(self) -> str: ...

    @property
    def title(self) -> str: ...

    @property
    def abstract(self) -> str: ...

    @property
    def authors(self) -> list[str]: ...

    @property
    def categories(self) -> list[str]: ...

    @property
    def published(self) -> datetime | None: ...

    @property
    def upvotes(self) -> int | None: ...

    @property
    def first_seen(self) -> datetime: ...

    @property
    def upvote_history(self) -> Sequence[Sequence[int]]: ...

    @property
    def on_hf(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class PaperRecord:
    """A paper as plain data, for the index (a snapshot of a `Paper` row)."""

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
    upvote_history: Sequence[Sequence[int]] = ()  # [count, unix seconds] each time the count rose
    on_hf: bool = False
    embedding: bytes | None = None  # title + abstract as a stored vector (`digest.embed`)
    embedding_model: str | None = None

    @classmethod
    def of(cls, paper: Any) -> PaperRecord:
        """A snapshot of a row (or of anything with the same attributes)."""
        return cls(
            paper.id, paper.title, paper.abstract, list(paper.authors), list(paper.categories),
            paper.published, paper.upvotes, paper.first_seen, paper.abs_url, paper.pdf_url,
            tuple(tuple(entry) for entry in paper.upvote_history), paper.on_hf,
            paper.embedding, paper.embedding_model,
        )  # fmt: skip


def reached(paper: PaperLike, upvotes: int, lookback: timedelta) -> float | None:
    """When (unix seconds) the paper first had at least `upvotes`, counted from when it was first
    seen and only within `lookback` of that; None if it never did."""
    seen = paper.first_seen.timestamp()
    history: Sequence[Sequence[float]] = paper.upvote_history or (
        [(paper.upvotes, seen)] if paper.upvotes is not None else []
    )
    when = next((max(float(at), seen) for count, at in history if count >= upvotes), None)
    return when if when is not None and when < seen + lookback.total_seconds() else None


Postings = dict[str, dict[int, list[int]]]


def _positions(text: str, start: int = 0) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for offset, word in enumerate(map(normalize, raw_words(text)), start):
        positions = found.get(word)
        if positions is None:
            found[word] = [offset]
        else:
            positions.append(offset)
    return found


def _mask_of(indices: Iterable[int], size: int) -> int:
    """A bitset from paper indices, built in one go (cheaper than OR-ing bit by bit)."""
    bitmap = bytearray((size + 7) // 8)
    for i in indices:
        bitmap[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(bitmap, "little")


_BYTE_BITS = [tuple(b for b in range(8) if value >> b & 1) for value in range(256)]


def _iter_bits(mask: int) -> list[int]:
    """The indices of the set bits, ascending (a byte at a time: far cheaper than bit tricks on
    thousand-bit integers)."""
    data = mask.to_bytes((mask.bit_length() + 7) // 8, "little")
    return [
        base + bit
        for base, byte in zip(range(0, len(data) * 8, 8), data, strict=True)
        if byte
        for bit in _BYTE_BITS[byte]
    ]


def _has_bit(mask: int, i: int) -> bool:
    return bool(mask >> i & 1)


@dataclass(frozen=True)
class CompiledTopic:
    """A topic evaluated against the index: which papers match, and with how many hits each."""

    text: str
    mask: int
    phrases: frozenset[tuple[str, ...]]
    # Matched papers best first for this topic alone (title hits, abstract hits, then standing).
    ranked: Any = None  # int32 array
    # Per paper of the index: title hits * 1024 + abstract hits (0 if not matched), for summing over
    # topics — int16 (title hits counted up to 31), since a big day holds tens of thousands of topics.
    score: Any = None
    node: Node | None = None
    author_phrases: frozenset[tuple[str, ...]] = frozenset()
    # The papers each OR alternative matches, computed when a card first asks which one it was.
    alternatives: dict[int, int] = field(default_factory=dict)


# Per index, bounded so a worker's memory stops growing with the number of readers: a big day has
# tens of thousands of distinct (topics, limits) selections, each about a kilobyte with its matches,
# and as many readers' own like: topics (~10 KB compiled each); a full cache starts over (the popular
# keys come straight back), the topic cache keeping the topics more than one reader used.
SELECTION_CACHE_MAX = 10_000
MATCH_CACHE_MAX = 40_000
TOPIC_CACHE_MAX = 4_000


class PaperIndex:
    """An inverted index over papers sorted by first-seen time, with per-topic result caching."""

    def __init__(self, papers: Iterable[PaperLike], semantics: Semantics | None = None) -> None:
        self.papers: list[PaperLike] = sorted(papers, key=lambda p: (p.first_seen, p.id))
        self.semantics = semantics
        self.vectors = PaperVectors.of(self.papers, semantics.model) if semantics else None
        self._likes: dict[tuple[str, str], LikeHits] = {}
        self._seen = [p.first_seen for p in self.papers]
        self.all = (1 << len(self.papers)) - 1
        self._postings: dict[str, Postings] = {"title": {}, "abstract": {}, "author": {}}
        self._masks: dict[tuple[str, str], int] = {}
        self._phrases: dict[tuple[str, tuple[str, ...]], int] = {}
        self._categories: dict[str, int] = defaultdict(int)
        self._topics: dict[str, CompiledTopic | None] = {}
        self._topic_uses: dict[str, int] = {}
        self._upvotes: dict[int, int] = {}
        self._reached: dict[tuple[int, timedelta], Any] = {}
        self._eligible: dict[tuple[object, ...], int] = {}
        self.hf = _mask_of((i for i, p in enumerate(self.papers) if p.on_hf), len(self.papers))
        self.position = {p.id: i for i, p in enumerate(self.papers)}
        self.selections: dict[tuple[object, ...], Selection] = {}
        self.matches: dict[tuple[object, ...], Match] = {}
        self._bare: dict[int, Match] = {}
        # Each paper's place in the tie-break order: more upvotes, then newer, then by id.
        by_standing = sorted(range(len(self.papers)), key=lambda i: _standing(self.papers[i]))
        self.order = [0] * len(self.papers)
        for rank, i in enumerate(by_standing):
            self.order[i] = rank
        self.order_array = np.array(self.order, dtype=np.int64)
        for i, paper in enumerate(self.papers):
            self._add(i, paper)

    def _add(self, i: int, paper: PaperLike) -> None:
        fields = {"title": _positions(paper.title), "abstract": _positions(paper.abstract)}
        authors: dict[str, list[int]] = {}
        for n, name in enumerate(paper.authors):
            for word, pos in _positions(name, n * _AUTHOR_GAP).items():
                authors.setdefault(word, []).extend(pos)
        fields["author"] = authors
        for name, found in fields.items():
            postings = self._postings[name]
            for word, pos in found.items():
                entry = postings.get(word)
                if entry is None:
                    postings[word] = {i: pos}
                else:
                    entry[i] = pos
        for cat in paper.categories:
            self._categories[cat.casefold()] |= 1 << i

    def occurs(self, i: int, phrase: tuple[str, ...]) -> bool:
        """Whether the phrase's words stand next to each other in paper i's title or abstract."""
        for name in ("title", "abstract"):
            postings = self._postings[name]
            starts = postings.get(phrase[0], {}).get(i)
            if not starts:
                continue
            rest = [set(postings.get(word, {}).get(i, ())) for word in phrase[1:]]
            if any(all(start + k in at for k, at in enumerate(rest, 1)) for start in starts):
                return True
        return False

    def _word_mask(self, name: str, word: str) -> int:
        """Papers whose field contains the word (built on first use, then kept)."""
        key = (name, word)
        mask = self._masks.get(key)
        if mask is None:
            mask = _mask_of(self._postings[name].get(word, ()), len(self.papers))
            self._masks[key] = mask
        return mask

    def window(self, start: datetime, end: datetime) -> int:
        """Papers first seen in [start, end)."""
        lo = bisect.bisect_left(self._seen, start)
        hi = bisect.bisect_left(self._seen, end)
        return ((1 << hi) - 1) ^ ((1 << lo) - 1)

    def at_least(self, upvotes: int) -> int:
        """Papers with a known upvote count of at least `upvotes`."""
        if upvotes not in self._upvotes:
            mask = 0
            for i, paper in enumerate(self.papers):
                if paper.upvotes is not None and paper.upvotes >= upvotes:
                    mask |= 1 << i
            self._upvotes[upvotes] = mask
        return self._upvotes[upvotes]

    def eligible(self, upvotes: int, start: datetime, end: datetime, lookback: timedelta) -> int:
        """Papers that first met `upvotes` in [start, end), within `lookback` of being first seen."""
        key = (upvotes, start, end, lookback)
        mask = self._eligible.get(key)
        if mask is None:
            times = self._reached.get((upvotes, lookback))
            if times is None:
                found = (reached(p, upvotes, lookback) for p in self.papers)
                times = np.array([np.inf if t is None else t for t in found], dtype=np.float64)
                self._reached[(upvotes, lookback)] = times
            inside = np.flatnonzero((times >= start.timestamp()) & (times < end.timestamp()))
            mask = self._eligible[key] = _mask_of(inside.tolist(), len(self.papers))
        return mask

    def mask_of_ids(self, paper_ids: Iterable[str]) -> int:
        """The bitset of those of these papers the index holds."""
        found = (self.position.get(pid) for pid in paper_ids)
        return _mask_of((i for i in found if i is not None), len(self.papers))

    def author_hits(self, i: int, phrases: Iterable[tuple[str, ...]]) -> frozenset[int]:
        """Which of paper i's authors (by position in its list) an `author:` phrase names."""
        postings = self._postings["author"]
        found: set[int] = set()
        for phrase in phrases:
            starts = postings.get(phrase[0], {}).get(i, ())
            rest = [set(postings.get(word, {}).get(i, ())) for word in phrase[1:]]
            found.update(s // _AUTHOR_GAP for s in starts if all(s + k in at for k, at in enumerate(rest, 1)))
        return frozenset(found)

    def reason(self, topic: CompiledTopic, i: int) -> str:
        """How a topic matched paper i, in words: for an OR, the alternative that matched."""
        if topic.node is None:
            return topic.text

        def chosen(node: Or) -> Node:
            for child in node.children:
                key = id(child)
                if key not in topic.alternatives:
                    topic.alternatives[key] = self.evaluate(child)
                if _has_bit(topic.alternatives[key], i):
                    return child
            return node.children[0]

        return label(topic.node, chosen, lambda like: like_reason(self.semantics, like, self.title_of))

    def _field_mask(self, name: str, words: tuple[str, ...]) -> int:
        if len(words) == 1:
            return self._word_mask(name, words[0])
        key = (name, words)  # a phrase: checked word by word once, then kept (topics share phrases)
        found = self._phrases.get(key)
        if found is None:
            found = self._phrases[key] = self._phrase_mask(name, words)
        return found

    def _phrase_mask(self, name: str, words: tuple[str, ...]) -> int:
        mask = self.all
        for word in words:
            mask &= self._word_mask(name, word)
            if not mask:
                return 0
        postings = self._postings[name]
        result = 0
        for i in _iter_bits(mask):
            if _has_phrase([postings[w][i] for w in words]):
                result |= 1 << i
        return result

    def term_mask(self, term: Term) -> int:
        """Papers in which the term (a word or a phrase) occurs in its field."""
        if term.field == "text":
            return self._field_mask("title", term.words) | self._field_mask("abstract", term.words)
        return self._field_mask(term.field, term.words)

    def evaluate(self, node: Node) -> int:
        """The set of papers a parsed topic matches."""
        if isinstance(node, Term):
            return self.term_mask(node)
        if isinstance(node, Category):
            return self._category_mask(node)
        if isinstance(node, Like):
            return self.like(node).mask
        if isinstance(node, Not):
            return self.all ^ self.evaluate(node.child)
        if isinstance(node, And):
            mask = self.all
            for child in node.children:
                mask &= self.evaluate(child)
                if not mask:
                    break
            return mask
        assert isinstance(node, Or)
        mask = 0
        for child in node.children:
            mask |= self.evaluate(child)
        return mask

    def like(self, node: Like) -> LikeHits:
        """The papers close in meaning to a `like:` term's text or example (once per index)."""
        key = (node.kind, node.value)
        if key not in self._likes:
            own = self.position.get(node.value) if node.kind == "paper" else None
            self._likes[key] = like_hits(self.vectors, self.semantics, node, own)
        return self._likes[key]

    def title_of(self, paper_id: str) -> str | None:
        """The title of a paper the index holds."""
        i = self.position.get(paper_id)
        return None if i is None else self.papers[i].title

    def _category_mask(self, node: Category) -> int:
        mask = 0
        for cat, bits in self._categories.items():
            if node.matches(cat):
                mask |= bits
        return mask

    def topic(self, text: str) -> CompiledTopic | None:
        """Evaluate one topic (cached: readers sharing a topic share the work); None if invalid."""
        if text in self._topics:
            self._topic_uses[text] += 1
            return self._topics[text]
        if len(self._topics) >= TOPIC_CACHE_MAX:
            self._forget_rare_topics()
        try:
            compiled: CompiledTopic | None = self._compile(text)
        except QueryError:
            compiled = None
        self._topics[text] = compiled
        self._topic_uses[text] = 1
        return compiled

    def _forget_rare_topics(self) -> None:
        """Make room in a full topic cache: drop the topics only one reader asked for (a reader's
        own like: topic, a one-off query) and keep the shared ones; if they are most of it, start over."""
        shared = {t: n for t, n in self._topic_uses.items() if n > 1}
        if len(shared) > TOPIC_CACHE_MAX // 2:
            shared = {}
        self._topics = {t: self._topics[t] for t in shared}
        self._topic_uses = dict.fromkeys(shared, 1)

    def _compile(self, text: str) -> CompiledTopic:
        node = parse_query(text)
        mask = self.evaluate(node)
        terms = positive_terms(node)
        matched = self.ids_of(mask)  # what follows is over the matched papers only
        title_hits, abstract_hits = np.zeros(len(matched), dtype=np.int32), np.zeros(len(matched), dtype=np.int32)
        closeness = np.zeros(len(matched), dtype=np.float64)  # between equal hits, the closest first
        for like in positive_likes(node):  # a close semantic hit ranks as a title hit
            found = self.like(like)
            if not found.mask & mask:
                continue
            near = self.flags(found.mask)[matched]
            similarity = found.similarity[matched]
            closeness[near] += similarity[near]
            close = near & (similarity >= strong_at(like))
            title_hits[close] += 1
            abstract_hits[near & ~close] += 1
        for term in terms:
            # Title and author hits rank above abstract hits; a field-bound term only counts there.
            strong_field = "author" if term.field == "author" else "title"
            if term.field != "abstract" and (strong := self._field_mask(strong_field, term.words) & mask):
                title_hits[self.flags(strong)[matched]] += 1
            if term.field in ("text", "abstract") and (weak := self._field_mask("abstract", term.words) & mask):
                abstract_hits[self.flags(weak)[matched]] += 1
        keys = (self.order_array[matched], -closeness, -abstract_hits, -title_hits)
        ranked = matched[np.lexsort(keys)].astype(np.int32)
        score = np.zeros(len(self.papers), dtype=np.int16)
        score[matched] = np.minimum(title_hits, 31) * 1024 + np.minimum(abstract_hits, 1023)
        highlight = frozenset(t.words for t in terms if t.field in ("text", "title", "abstract"))
        by_author = frozenset(t.words for t in terms if t.field == "author")
        return CompiledTopic(text, mask, highlight, ranked, score, node, by_author)

    def bare(self, i: int) -> Match:
        """Paper i as a match that says nothing about why (one per paper, made on first use)."""
        match = self._bare.get(i)
        if match is None:
            match = self._bare[i] = Match(self.papers[i], (), 0, 0)
        return match

    def flags(self, mask: int) -> Any:
        """A bitset as a boolean array over the papers."""
        data = np.frombuffer(mask.to_bytes((len(self.papers) + 7) // 8 or 1, "little"), dtype=np.uint8)
        return np.unpackbits(data, bitorder="little")[: len(self.papers)].astype(bool)

    def ids_of(self, mask: int) -> Any:
        """The indices of a bitset's papers as a numpy array."""
        return np.flatnonzero(self.flags(mask))


def _standing(paper: PaperLike) -> tuple[int, float, str]:
    published = paper.published or paper.first_seen
    return (-(paper.upvotes or 0), -published.timestamp(), paper.id)


def _has_phrase(positions: Sequence[list[int]]) -> bool:
    later = [set(p) for p in positions[1:]]
    return any(all(start + k + 1 in later[k] for k in range(len(later))) for start in positions[0])


@dataclass(frozen=True)
class Match:
    """One paper chosen for one reader, with the reasons it was chosen."""

    paper: PaperLike
    topics: tuple[str, ...]
    title_hits: int
    abstract_hits: int
    # The matched words and phrases (normalized word tuples) to highlight in title and snippet.
    highlight: frozenset[tuple[str, ...]] = field(default_factory=frozenset)
    # Per topic in `topics`: what of it matched, in words (for an OR, the alternative that did).
    reasons: tuple[str, ...] = ()
    # The authors (positions in the paper's list) an `author:` term named: shown and highlighted.
    authors_hit: frozenset[int] = frozenset()
    rank: int | None = None  # a trending paper's place (1 = most upvoted)
    recommended: bool = False  # no topic matched it: the reader's learned ranking picked it


@dataclass(frozen=True)
class Selection:
    """The papers a reader gets this time: ranked, capped, and how many the cap left out."""

    matches: list[Match]
    more: int


def select(
    index: PaperIndex,
    topics: Sequence[str],
    *,
    candidates: int,
    min_upvotes: int | None = None,
    cap: int = DEFAULT_PREFERENCES.max_papers,
    explain: bool = True,
) -> Selection:
    """The papers among `candidates` matching any topic, ranked and capped for one reader.

    Ranking: title (and author) hits, then abstract hits, then upvotes, then the most recent.
    Readers with the same topics, limits and window share one computed selection. Without
    `explain`, the matches carry no reasons, highlights or matched authors (what only a card shows)."""
    key = (tuple(topics), min_upvotes or 0, cap, candidates, explain)
    cached = index.selections.get(key)
    if cached is None:
        cached = _select(index, topics, candidates, min_upvotes, cap, explain)
        if len(index.selections) >= SELECTION_CACHE_MAX:
            index.selections.clear()
        index.selections[key] = cached
    return cached


def _select(
    index: PaperIndex, topics: Sequence[str], candidates: int, min_upvotes: int | None, cap: int, explain: bool
) -> Selection:
    if min_upvotes:
        candidates &= index.at_least(min_upvotes)
    compiled = _compiled(index, topics)
    matched = _union(compiled) & candidates
    total = matched.bit_count()
    if len(compiled) == 1:  # the common case: walk the topic's own ranking, keep the first `cap`
        top = list(islice((i for i in compiled[0].ranked.tolist() if _has_bit(matched, i)), cap))
    else:
        top = _top_combined(index, compiled, matched, cap)
    return Selection([_match_for(index, i, compiled, explain) for i in top], max(0, total - cap))


def _top_combined(index: PaperIndex, compiled: Sequence[CompiledTopic], matched: int, cap: int) -> list[int]:
    """The best `cap` of the matched papers by summed hits over several topics, vectorised: one
    score array per topic, added, then a partial sort of just the matched papers."""
    ids = index.ids_of(matched)
    if len(ids) == 0:
        return []
    score = compiled[0].score[ids].astype(np.int64)
    for topic in compiled[1:]:
        score += topic.score[ids]
    keys = -score * (len(index.papers) + 1) + index.order_array[ids]
    k = min(cap, len(ids))
    best = np.argpartition(keys, k - 1)[:k]
    return [int(i) for i in ids[best[np.argsort(keys[best])]]]


def _match_for(index: PaperIndex, i: int, compiled: Sequence[CompiledTopic], explain: bool = True) -> Match:
    """The Match for paper i (cached by the topics that hit it: readers share them); without
    `explain`, the paper alone (what recording a digest needs)."""
    if not explain:
        return index.bare(i)
    hit = tuple(t for t in compiled if t.mask >> i & 1)
    key = (i, tuple(t.text for t in hit))
    match = index.matches.get(key)
    if match is None:
        scores = [int(t.score[i]) for t in hit]
        match = Match(
            paper=index.papers[i],
            topics=key[1],
            title_hits=sum(score >> 10 for score in scores),
            abstract_hits=sum(score & 1023 for score in scores),
            # Only what occurs in this paper: readers whose topics differ elsewhere then share its card.
            highlight=frozenset(p for t in hit for p in t.phrases if index.occurs(i, p)),
            reasons=tuple(index.reason(t, i) for t in hit),
            authors_hit=index.author_hits(i, {p for t in hit for p in t.author_phrases}),
        )
        if len(index.matches) >= MATCH_CACHE_MAX:
            index.matches.clear()
        index.matches[key] = match
    return match


def _compiled(index: PaperIndex, topics: Sequence[str]) -> list[CompiledTopic]:
    return [c for c in (index.topic(t) for t in topics) if c is not None]


def annotate(
    index: PaperIndex,
    topics: Sequence[str],
    paper_ids: Sequence[str],
    trending: int = 0,
    recommended: int = 0,
    learned: Learned | None = None,
) -> list[Match]:
    """Matches for papers already chosen (a stored delivery), in their stored order; the first
    `trending` of them are the trending section, ranked in that order, the last `recommended` the
    papers the reader's votes brought (`learned` says why)."""
    compiled = _compiled(index, topics)
    out = []
    for n, pid in enumerate(paper_ids):
        i = index.position.get(pid)
        if i is None:
            continue
        if n >= len(paper_ids) - recommended:
            out.append(_recommended_match(index, i, learned))
        else:
            match = _match_for(index, i, compiled)
            out.append(replace(match, rank=n + 1) if n < trending else match)
    return out


def _recommended_match(index: PaperIndex, i: int, learned: Learned | None) -> Match:
    """A paper the reader's learned ranking brought, with its reason ('like <title>, which you liked')."""
    vectors = index.vectors
    why = learned.because(vectors.matrix[i]) if learned is not None and vectors is not None else ""
    return Match(index.papers[i], (), 0, 0, reasons=(why or "recommended from your votes",), recommended=True)


# A trending paper first seen this long before the reader's window may still be picked (if they
# were not sent it): a paper that arrived just before the last digest had no time to climb.
TRENDING_GRACE = timedelta(days=1)


@dataclass(frozen=True)
class Picked:
    """One reader's digest: the trending section (best first) and the papers on their topics."""

    trending: list[Match]
    topical: Selection
    recommended: list[Match] = field(default_factory=list)

    @property
    def matches(self) -> list[Match]:
        """Every paper of the digest: trending, then on the topics, then recommended."""
        return [*self.trending, *self.topical.matches, *self.recommended]


def pick(  # noqa: PLR0913 (keyword-only options after the window: exclude, learned, explain)
    index: PaperIndex,
    prefs: Preferences,
    start: datetime,
    end: datetime,
    *,
    lookback: timedelta,
    exclude: int = 0,
    learned: Learned | None = None,
    explain: bool = True,
) -> Picked:
    """The papers of one reader's digest for the window [start, end), none of those in `exclude`
    (what they were already sent): the top `prefs.trending` papers on Hugging Face by upvotes,
    then the papers their topics match — first seen in the window or, with a minimum of upvotes,
    that first met it in the window — never one twice. Without `explain` (recording a digest: its
    cards are annotated when composed) the matches carry no reasons or highlights."""
    vectors = index.vectors
    scores, unwanted = learned.judge(vectors.matrix) if learned is not None and vectors is not None else (None, None)
    keep = index.all ^ (index.all & (exclude | (mask_of_flags(unwanted) if unwanted is not None else 0)))
    trending = _trending(index, prefs, start, end, keep, explain) if prefs.trending else []
    if trending:
        keep ^= index.mask_of_ids(m.paper.id for m in trending)
    least = prefs.min_upvotes
    window = (index.eligible(least, start, end, lookback) if least else index.window(start, end)) & keep
    topical = Selection([], 0)
    if prefs.topics:
        topical = _topical(index, prefs, window, scores, explain)
    if learned is None or scores is None:
        return Picked(trending, topical)
    pool = index.window(start, end) & keep & ~index.mask_of_ids(m.paper.id for m in topical.matches)
    pool &= ~_union(_compiled(index, prefs.topics))
    return Picked(trending, topical, _recommend(index, learned, scores, pool, explain))


def _union(compiled: Sequence[CompiledTopic]) -> int:
    """The papers any of these topics matches."""
    mask = 0
    for topic in compiled:
        mask |= topic.mask
    return mask


def _topical(index: PaperIndex, prefs: Preferences, window: int, scores: Any, explain: bool) -> Selection:
    """The papers on the reader's topics: by hits — or, with a learned model's `scores` (one per
    paper of the index), by those (papers not embedded yet after those that are, in hits order)."""
    vectors = index.vectors
    if scores is None or vectors is None:
        return select(index, prefs.topics, candidates=window, cap=prefs.max_papers, explain=explain)
    compiled = _compiled(index, prefs.topics)
    matched = _union(compiled) & window
    cap = prefs.max_papers
    ids = index.ids_of(matched & vectors.present)
    best = _best(ids, scores, cap)
    if len(best) < cap:
        best += _top_combined(index, compiled, matched & ~vectors.present, cap - len(best))
    chosen = [_match_for(index, i, compiled, explain) for i in best]
    return Selection(chosen, max(0, matched.bit_count() - cap))


def _best(ids: Any, scores: Any, k: int) -> list[int]:
    """The `k` of these papers with the highest scores, best first (a partial sort)."""
    if len(ids) > k:
        ids = ids[np.argpartition(-scores[ids], k - 1)[:k]]
    return [int(i) for i in ids[np.argsort(-scores[ids], kind="stable")]]


def _recommend(index: PaperIndex, learned: Learned, scores: Any, pool: int, explain: bool) -> list[Match]:
    """Up to RECOMMENDED_MAX papers no topic matched that the reader's model scores high."""
    vectors = index.vectors
    if vectors is None:
        return []
    ids = index.ids_of(pool & vectors.present)
    best = [
        int(i) for i in ids[np.argsort(-scores[ids], kind="stable")][:RECOMMENDED_MAX] if scores[i] >= RECOMMEND_MIN
    ]
    return [_recommended_match(index, i, learned if explain else None) for i in best]


def _trending(
    index: PaperIndex, prefs: Preferences, start: datetime, end: datetime, keep: int, explain: bool
) -> list[Match]:
    """The top papers on Hugging Face first seen in the window (or just before it), by upvotes."""
    pool = index.hf & index.window(start - TRENDING_GRACE, end) & keep
    key = ("trending", prefs.trending, tuple(prefs.topics), pool, explain)
    cached = index.selections.get(key)
    if cached is None:
        ids = index.ids_of(pool)
        best = ids[np.argsort(index.order_array[ids], kind="stable")][: prefs.trending or 0]
        compiled = _compiled(index, prefs.topics)
        ranked = [replace(_match_for(index, int(i), compiled, explain), rank=n) for n, i in enumerate(best, 1)]
        cached = index.selections[key] = Selection(ranked, 0)
    return cached.matches
