"""Semantic topics on fixed vectors: which papers a `like:` term finds, how it combines with the
boolean operators, and how a card says why (the real model runs in tests/test_embed_topics.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from digest.embed import to_bytes
from digest.match import PaperIndex, select
from digest.semantic import Example, Semantics, Vector, like_texts
from tests.test_match import P


def v(*values: float) -> Vector:
    """A unit vector in 4 dimensions."""
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def paper(pid: str, title: str, vector: Vector | None, model: str = "fake") -> P:
    return P(pid, title, embedding=None if vector is None else to_bytes(vector), embedding_model=model)


LONG = v(1, 0, 0, 0)
PAPERS = [
    paper("2601.00001", "Extending the context window", v(1, 0.1, 0, 0)),
    paper("2601.00002", "Length extrapolation of transformers", v(0.9, 0.3, 0, 0)),
    paper("2601.00003", "A survey of long context", v(0.95, 0, 0.2, 0)),
    paper("2601.00004", "Protein folding", v(0, 0, 0, 1)),
    paper("2601.00005", "Long context without a vector yet", None),
    paper("2601.00006", "Another model's vector", v(1, 0, 0, 0), model="other"),
]
OUTSIDE = {"2501.99999": Example("An older paper on long context", v(1, 0.05, 0, 0))}


@dataclass
class World:
    """What Semantics asks of the world, with a record of the calls."""

    embedded: list[str] = field(default_factory=list)
    looked_up: list[str] = field(default_factory=list)

    def embed(self, text: str) -> Vector:
        self.embedded.append(text)
        return LONG if "context" in text else v(0, 1, 0, 0)

    def lookup(self, ids: Sequence[str]) -> dict[str, Example]:
        self.looked_up.extend(ids)
        return {i: OUTSIDE[i] for i in ids if i in OUTSIDE}


def _index(world: World) -> PaperIndex:
    return PaperIndex(PAPERS, Semantics("fake", world.embed, world.lookup))


def _found(index: PaperIndex, topic: str) -> list[str]:
    return [m.paper.id[-1] for m in select(index, [topic], candidates=index.all, cap=20).matches]


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ('like:"context window extension"', ["1", "3", "2"]),  # closest first; no vector, other model: never
        ('like:"context window extension" -survey', ["1", "2"]),
        ('like:"context window extension" OR protein', ["1", "3", "2", "4"]),  # a close hit ranks as a title hit
        ("like:2601.00001", ["2", "3"]),  # the example itself is not shown
        ("like:2501.99999", ["1", "3", "2"]),  # an example outside the window: its stored vector
        ("like:2401.00000", []),  # an example we never saw finds nothing
        ('like:"quantum gravity"', []),
        ('"long context"', ["3", "5"]),  # words still find the paper not embedded yet
    ],
)
def test_like_terms(topic: str, expected: list[str]) -> None:
    assert _found(_index(World()), topic) == expected


def test_texts_are_embedded_and_examples_looked_up_once() -> None:
    world = World()
    index = _index(world)
    for _ in range(3):
        _found(index, 'like:"context window extension"')
        _found(index, 'like:"context window extension" -survey')
        _found(index, "like:2501.99999")
    assert world.embedded == ["context window extension"] and world.looked_up == ["2501.99999"]


def test_without_embeddings_a_like_term_finds_nothing_and_the_rest_still_works() -> None:
    index = PaperIndex(PAPERS)  # no semantics configured (DIGEST_EMBEDDING_MODEL=none)
    assert _found(index, 'like:"context window extension"') == []
    assert _found(index, 'like:"context window extension" OR protein') == ["4"]


@pytest.mark.parametrize(
    ("topic", "paper_id", "reason"),
    [
        ('like:"context window extension"', "2601.00002", 'close to "context window extension"'),
        ("like:2601.00001", "2601.00003", "close to your example Extending the context window"),
        ("like:2501.99999 OR protein", "2601.00001", "close to your example An older paper on long context"),
        ("like:2501.99999 OR protein", "2601.00004", "protein"),
    ],
)
def test_the_card_says_which_example_or_text_it_was_close_to(topic: str, paper_id: str, reason: str) -> None:
    index = _index(World())
    found = {m.paper.id: m.reasons for m in select(index, [topic], candidates=index.all, cap=20).matches}
    assert found[paper_id] == (reason,)


def test_like_texts_are_every_described_text_of_the_topics_once() -> None:
    topics = [
        'like:"long context" OR like:2601.00001',
        '"kv cache" -like:"quantization"',
        'like:"long context" cat:cs.CL',
        'like:"unclosed',  # does not parse: no texts
        "diffusion",
    ]
    assert like_texts(topics) == ["long context", "quantization"]


def test_prefetch_asks_for_the_missing_texts_in_one_call() -> None:
    asked: list[list[str]] = []

    def many(texts: Sequence[str]) -> dict[str, Vector]:
        asked.append(list(texts))
        return {t: LONG for t in texts}

    world = World()
    semantics = Semantics("fake", world.embed, world.lookup, many)
    semantics.prefetch(["a", "b", "a"])
    semantics.prefetch(["b", "c"])
    assert asked == [["a", "b"], ["c"]]
    assert semantics.text_vector("a") is LONG and world.embedded == []  # prefetched: never embedded one by one
