"""Semantic matching: which papers a `like:` term finds, by cosine similarity of embeddings.

A `like:"text"` term embeds its text (once per process and text); a `like:2406.12345` term takes
the example paper's stored vector — from the index when the paper is in it, else looked up once.
Papers without a vector of the configured model are matched by words only: a `like:` term never
finds them. Pure but for the two callables `Semantics` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from digest.embed import from_bytes
from digest.query import And, Like, Node, Not, Or, QueryError, parse_query
from digest.text import clip

Vector = npt.NDArray[np.float32]
# Cosine similarity a paper needs to be "like" a text or an example paper (all-MiniLM-L6-v2 on
# title + abstract): the best macro F1 of `make eval` (bench/eval: 1,599 real papers, 10 interests;
# re-checked leaving one interest out) — see bench/eval/results.md.
TEXT_THRESHOLD = 0.45
PAPER_THRESHOLD = 0.55
# A semantic hit this close counts as a title hit when ranking; below, as an abstract hit.
STRONG_MARGIN = 0.12


@dataclass(frozen=True)
class Example:
    """A reader's example paper: its title (for the card's reason) and its vector, if it has one."""

    title: str
    vector: Vector | None


@dataclass
class Semantics:
    """What semantic matching needs from the world: the configured model's name, its text embedder
    and a lookup of example papers by id — both called lazily, and their answers kept."""

    model: str
    embed_text: Callable[[str], Vector]
    lookup: Callable[[Sequence[str]], dict[str, Example]]
    embed_texts: Callable[[Sequence[str]], dict[str, Vector]] | None = None  # many at once, if it can
    texts: dict[str, Vector] = field(default_factory=dict)
    examples: dict[str, Example | None] = field(default_factory=dict)

    def text_vector(self, text: str) -> Vector:
        """The vector of a `like:"…"` text (embedded once)."""
        if text not in self.texts:
            self.texts[text] = self.embed_text(text)
        return self.texts[text]

    def prefetch(self, texts: Iterable[str]) -> None:
        """Have the vectors of these texts at hand, asking for all the missing ones in one call."""
        missing = [t for t in dict.fromkeys(texts) if t not in self.texts]
        if missing and self.embed_texts is not None:
            self.texts.update(self.embed_texts(missing))

    def example(self, paper_id: str) -> Example | None:
        """An example paper by id (looked up once); None if we never saw it."""
        if paper_id not in self.examples:
            self.examples[paper_id] = self.lookup([paper_id]).get(paper_id)
        return self.examples[paper_id]


def like_texts(topics: Iterable[str]) -> list[str]:
    """The `like:"…"` texts of these topics (each once; topics that do not parse have none)."""
    found: dict[str, None] = {}
    for topic in topics:
        found.update(dict.fromkeys(_texts_of(topic)))
    return list(found)


@lru_cache(maxsize=65_536)
def _texts_of(topic: str) -> tuple[str, ...]:
    """One topic's like:"…" texts (parsed once per process: every chunk asks again)."""
    try:
        node = parse_query(topic)
    except QueryError:
        return ()
    return tuple(like.value for like in _likes(node) if like.kind == "text")


def _likes(node: Node) -> Iterator[Like]:
    if isinstance(node, Like):
        yield node
    elif isinstance(node, Not):
        yield from _likes(node.child)
    elif isinstance(node, And | Or):
        for child in node.children:
            yield from _likes(child)


def mask_of_flags(flags: npt.NDArray[np.bool_]) -> int:
    """A bitset (bit i set where flags[i]) from a boolean array, in one go."""
    return int.from_bytes(np.packbits(flags, bitorder="little").tobytes(), "little")


@dataclass(frozen=True)
class PaperVectors:
    """The index's papers' vectors as one matrix (rows of papers without one are zero), which rows
    have one (`rows`), and the same as a bitset (`present`)."""

    matrix: Vector
    present: int
    rows: npt.NDArray[np.bool_]

    @classmethod
    def of(cls, papers: Sequence[Any], model: str) -> PaperVectors | None:
        """The vectors of `papers` made by `model`; None when none of them has one."""
        found = [
            (i, from_bytes(p.embedding))
            for i, p in enumerate(papers)
            if getattr(p, "embedding", None) is not None and getattr(p, "embedding_model", None) == model
        ]
        if not found:
            return None
        matrix = np.zeros((len(papers), len(found[0][1])), dtype=np.float32)
        rows = np.zeros(len(papers), dtype=bool)
        for i, vector in found:
            matrix[i] = vector
            rows[i] = True
        return cls(matrix, mask_of_flags(rows), rows)


@dataclass(frozen=True)
class LikeHits:
    """What one `like:` term found: the papers close enough (a bitset), and every paper's
    similarity to the text or example (read only where the bit is set)."""

    mask: int
    similarity: npt.NDArray[np.float32]


NOTHING = LikeHits(0, np.zeros(0, dtype=np.float32))


def like_hits(vectors: PaperVectors | None, semantics: Semantics | None, like: Like, own: int | None) -> LikeHits:
    """The papers like this term's text or example (`own`: the example's own place in the index, if
    it is there: a paper is not shown as like itself)."""
    if vectors is None or semantics is None:
        return NOTHING
    if like.kind == "text":
        target: Vector | None = semantics.text_vector(like.value)
        threshold = TEXT_THRESHOLD
    else:
        target = vectors.matrix[own] if own is not None and vectors.rows[own] else None
        if target is None:
            example = semantics.example(like.value)
            target = example.vector if example else None
        threshold = PAPER_THRESHOLD
    if target is None:
        return NOTHING
    scores: npt.NDArray[np.float32] = vectors.matrix @ target
    close = (scores >= threshold) & vectors.rows
    if own is not None:
        close[own] = False
    return LikeHits(mask_of_flags(close), scores)


def strong_at(like: Like) -> float:
    """The similarity from which a semantic hit ranks with title hits (below, as an abstract hit)."""
    return (TEXT_THRESHOLD if like.kind == "text" else PAPER_THRESHOLD) + STRONG_MARGIN


def like_reason(semantics: Semantics | None, like: Like, titles: Callable[[str], str | None]) -> str:
    """How a card names a `like:` match: 'close to "context windows"' or 'close to your example
    <its title>'."""
    if like.kind == "text":
        return f'close to "{clip(like.value, 30)}"'
    title = titles(like.value)
    if title is None and semantics is not None and (example := semantics.example(like.value)) is not None:
        title = example.title
    return f"close to your example {clip(title, 50)}" if title else f"close to your example {like.value}"
