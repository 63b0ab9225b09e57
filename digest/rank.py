"""A ranking per reader, learned from their votes: logistic regression over paper embeddings.

Positives are the papers the reader asked "more like this" of; negatives those they asked "less
like this" of, plus random papers they never voted on as weak negatives (a reader sees many papers
and votes on few: an unvoted paper is probably, but not surely, one they would not pick). Training
is a few Newton steps on at most a few hundred rows of 384 numbers: milliseconds, done by a worker
when votes change, never in a web request. Pure: vectors in, weights out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt

Vector = npt.NDArray[np.float32]
Matrix = npt.NDArray[np.float32]
Judged = tuple[npt.NDArray[np.float64] | None, npt.NDArray[np.bool_]]  # scores, unwanted

MIN_LIKES = 3  # a model only once the reader liked this many papers
WEAK_NEGATIVES = 4  # random unvoted papers per positive
WEAK_WEIGHT = 0.25  # how much an unvoted paper counts, against 1 for a vote
L2 = 0.1
NEWTON_STEPS = 8
RECOMMEND_MIN = 0.7  # a paper no topic matched is recommended only above this probability
NEAR_DUPLICATE = 0.9  # cosine similarity to a "less like this" paper that keeps a paper out
RECOMMENDED_MAX = 3


@dataclass(frozen=True)
class Example:
    """A paper the reader voted on, as ranking needs it."""

    paper_id: str
    title: str
    vector: Vector


@dataclass(frozen=True)
class Learned:
    """What a reader's votes teach: their model (None below MIN_LIKES), what they liked (to say why
    a paper is recommended) and what they disliked (to keep its near-duplicates out)."""

    weights: Vector | None
    liked: Sequence[Example]
    disliked: Matrix
    judged: Judged | None = field(default=None, compare=False, repr=False)  # `judge` of an index, done

    def scores(self, matrix: Matrix) -> npt.NDArray[np.float64]:
        """The probability, per row of `matrix`, that the reader wants that paper (0 without a model)."""
        scores, _unwanted = self.judge(matrix)
        return scores if scores is not None else np.zeros(len(matrix))

    def unwanted(self, matrix: Matrix) -> npt.NDArray[np.bool_]:
        """Rows too close to a paper the reader asked to see less of."""
        return self.judge(matrix)[1]

    def judge(self, matrix: Matrix) -> Judged:
        """`scores` (None without a model) and `unwanted` of every row, in one pass over the matrix
        for the weights and the disliked papers together (`judge_all`: for many readers at once)."""
        if self.judged is not None and len(self.judged[1]) == len(matrix):
            return self.judged
        columns = self.columns()
        return self.judged_from(matrix @ columns.T if len(columns) else np.zeros((len(matrix), 0), np.float32))

    def columns(self) -> Matrix:
        """What a paper's vector is multiplied with: the weights (with a model), then the disliked."""
        parts = [self.weights[None, :-1]] if self.weights is not None else []
        if len(self.disliked):
            parts.append(self.disliked)
        return np.vstack(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def judged_from(self, products: Matrix) -> Judged:
        """`judge` from the products of the matrix with `columns()`."""
        scores = None
        if self.weights is not None:
            scores = 1.0 / (1.0 + np.exp(-(products[:, 0].astype(np.float64) + float(self.weights[-1]))))
        dislikes = products[:, 1:] if self.weights is not None else products
        none = np.zeros(len(products), dtype=bool)
        return scores, np.asarray(dislikes.max(axis=1) >= NEAR_DUPLICATE) if dislikes.shape[1] else none

    def because(self, vector: Vector) -> str:
        """'like <title>, which you liked' — the liked paper closest to this one."""
        if not self.liked:
            return ""
        best = max(self.liked, key=lambda e: float(e.vector @ vector))
        return f"like {best.title}, which you liked"


def judge_all(learned: Mapping[int, Learned], matrix: Matrix) -> dict[int, Learned]:
    """Each reader's `Learned` with its `judge` of the matrix done, all from one product of the
    matrix with every reader's columns: a chunk reads the paper vectors once, not once per reader."""
    blocks = {key: one.columns() for key, one in learned.items()}
    wanted = [b for b in blocks.values() if len(b)]
    products = matrix @ np.vstack(wanted).T if wanted else np.zeros((len(matrix), 0), dtype=np.float32)
    out, at = {}, 0
    for key, one in learned.items():
        width = len(blocks[key])
        out[key] = replace(one, judged=one.judged_from(products[:, at : at + width]))
        at += width
    return out


def train(liked: Matrix, disliked: Matrix, unvoted: Matrix) -> Vector | None:
    """Logistic-regression weights (the last entry is the bias) from the reader's votes and weak
    negatives; None with fewer than MIN_LIKES likes."""
    if len(liked) < MIN_LIKES:
        return None
    rows = np.vstack([liked, disliked, unvoted]).astype(np.float64)
    rows = np.hstack([rows, np.ones((len(rows), 1))])
    labels = np.concatenate([np.ones(len(liked)), np.zeros(len(disliked) + len(unvoted))])
    weights = np.concatenate([np.ones(len(liked) + len(disliked)), np.full(len(unvoted), WEAK_WEIGHT)])
    return _newton(rows, labels, weights).astype(np.float32)


def _newton(
    rows: npt.NDArray[np.float64], labels: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Weighted, L2-regularised logistic regression by Newton's method (the bias unregularised)."""
    dim = rows.shape[1]
    penalty = np.full(dim, L2)
    penalty[-1] = 0.0
    beta = np.zeros(dim)
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-(rows @ beta)))
        gradient = rows.T @ (weights * (p - labels)) + penalty * beta
        step = _solve(rows * np.sqrt(weights * p * (1 - p))[:, None], penalty + 1e-6, gradient)
        beta -= step
        if float(np.abs(step).max()) < 1e-6:
            break
    return beta


def _solve(a: npt.NDArray[np.float64], diag: npt.NDArray[np.float64], g: npt.NDArray[np.float64]) -> Any:
    """(AᵀA + diag)⁻¹ g. A reader has far fewer votes than the vectors have dimensions: then through
    the rows × rows system (the Woodbury identity) — the same step, ~30x cheaper than dim × dim."""
    n, dim = a.shape
    if n >= dim:
        return np.linalg.solve(a.T @ a + np.diag(diag), g)
    scaled = a / diag
    inv_g = g / diag
    return inv_g - scaled.T @ np.linalg.solve(np.eye(n) + scaled @ a.T, a @ inv_g)


def weak_negatives(pool: Matrix, count: int, seed: int) -> Matrix:
    """`count` random rows of `pool` (papers the reader never voted on), the same for the same seed."""
    return pool[weak_choice(len(pool), count, seed)]


def weak_choice(size: int, count: int, seed: int) -> npt.NDArray[np.intp]:
    """Which `count` of `size` pool papers are the weak negatives (the same for the same seed)."""
    if size == 0 or count <= 0:
        return np.zeros(0, dtype=np.intp)
    rng = np.random.default_rng(seed)
    return rng.choice(size, size=min(count, size), replace=False)


def to_bytes(weights: Vector) -> bytes:
    """Weights as stored in `ReaderModel.weights`."""
    return np.asarray(weights, dtype="<f4").tobytes()


def from_bytes(blob: bytes) -> Vector:
    """Stored weights back."""
    weights: Vector = np.frombuffer(blob, dtype="<f4").astype(np.float32)
    return weights
