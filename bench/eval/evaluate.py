"""The relevance evaluation (issue 13 #6): real papers, reader interests with judged labels, and
how well each way of stating an interest finds the wanted papers — through the real code path
(`PaperRecord`s with stored-format vectors, `PaperIndex` with `Semantics`, `match.select`).

Methods, each a list of topics as a reader would enter them:
  boolean   — the interest's boolean query;
  semantic  — `like:"<description>"`;
  examples  — `like:ID OR like:ID …` over the interest's example papers;
  combined  — the three above as separate topics (a paper matching any one is shown);
  votes     — the combined topics re-ranked by digest/rank.py, retrained on a simulated reader's
              votes (from the labels) after each of 5 digests (`votes_method`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np

import digest.semantic
from digest.embed import Embedder, Vectors, paper_text, to_bytes
from digest.match import PaperIndex, PaperRecord, select
from digest.parse import arxiv_urls
from digest.query import parse_query
from digest.semantic import Example, Semantics

HERE = Path(__file__).resolve().parent
PAPERS = HERE / "papers.jsonl"
INTERESTS = HERE / "interests.json"
CACHE = HERE / "cache"  # gitignored: vectors keyed by the model and the papers' texts
METHODS = ("boolean", "semantic", "examples", "combined")
METRICS = ("recall", "precision", "f1", "ndcg@20")
NDCG_AT = 20
TEXT_SWEEP = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6)
PAPER_SWEEP = (0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
DIGESTS = 5  # simulated digests a reader votes on
SHOWN = 20  # papers per digest
EPOCH = datetime(2025, 12, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Interest:
    """One reader's interest: what they would type, describe and point at, and what they want."""

    name: str
    query: str
    description: str
    examples: tuple[str, ...]
    relevant: frozenset[str]
    judged: frozenset[str]  # every candidate looked at (relevant or not)


def load_papers(path: Path = PAPERS) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def load_interests(path: Path = INTERESTS) -> list[Interest]:
    raw = json.loads(path.read_text())
    return [
        Interest(
            name=item["name"],
            query=item["query"],
            description=item["description"],
            examples=tuple(item["examples"]),
            relevant=frozenset(item["relevant"]),
            judged=frozenset(item["relevant"]) | frozenset(item["not_relevant"]),
        )
        for item in raw["interests"]
    ]


def records(papers: Sequence[dict[str, Any]], vectors: Vectors | None, model: str) -> list[PaperRecord]:
    """The papers as the index's records, each vector stored as the database stores it (float16)."""
    out = []
    for i, paper in enumerate(papers):
        abs_url, pdf_url = arxiv_urls(paper["id"])
        seen = EPOCH + timedelta(seconds=i)
        out.append(
            PaperRecord(
                paper["id"],
                paper["title"],
                paper["abstract"],
                [],
                list(paper.get("categories", [])),
                seen,
                None,
                seen,
                abs_url,
                pdf_url,
                embedding=to_bytes(vectors[i]) if vectors is not None else None,
                embedding_model=model if vectors is not None else None,
            )
        )
    return out


def embed_papers(papers: Sequence[dict[str, Any]], embedder: Embedder, cache: Path | None = CACHE) -> Vectors:
    """Every paper's vector of `paper_text` (title. abstract), cached in `cache` by model and texts."""
    texts = [paper_text(cast(Any, SimpleNamespace(title=p["title"], abstract=p["abstract"]))) for p in papers]
    key = hashlib.sha256("\n".join([embedder.name, *texts]).encode()).hexdigest()[:16]
    path = cache / f"vectors-{embedder.name}-{key}.npy" if cache is not None else None
    if path is not None and path.exists():
        cached: Vectors = np.load(path).astype(np.float32)
        return cached
    vectors = embedder.embed(texts)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors.astype(np.float16))
    return vectors


def build_index(papers: Sequence[dict[str, Any]], vectors: Vectors | None, embedder: Embedder | None) -> PaperIndex:
    """A `PaperIndex` over the papers with an in-memory `Semantics` equivalent to
    `digest.index.semantics_for`: texts embedded by the same model, examples looked up among the
    papers (with their stored-format vectors)."""
    model = embedder.name if embedder is not None else "none"
    recs = records(papers, vectors, model)
    if embedder is None:
        return PaperIndex(recs, None)
    by_id = {r.id: r for r in recs}
    model_embedder = embedder

    def embed_text(text: str) -> Vectors:
        vector: Vectors = model_embedder.embed([text])[0]
        return vector

    def lookup(ids: Sequence[str]) -> dict[str, Example]:
        found = {}
        for pid in ids:
            rec = by_id.get(pid)
            if rec is not None:
                vector = np.frombuffer(rec.embedding, dtype="<f2").astype(np.float32) if rec.embedding else None
                found[pid] = Example(rec.title, vector)
        return found

    return PaperIndex(recs, Semantics(model, embed_text, lookup))


def topics_for(interest: Interest, method: str) -> list[str]:
    """The topics a reader would list for this method."""
    boolean = [interest.query]
    semantic = ['like:"' + interest.description.replace('"', "") + '"']
    examples = [" OR ".join(f"like:{pid}" for pid in interest.examples)] if interest.examples else []
    return {"boolean": boolean, "semantic": semantic, "examples": examples, "combined": boolean + semantic + examples}[
        method
    ]


def ranked_ids(index: PaperIndex, topics: Sequence[str]) -> list[str]:
    """Every paper the topics match, in the order a digest would show them."""
    if not topics:
        return []
    selection = select(index, topics, candidates=index.all, cap=len(index.papers))
    return [m.paper.id for m in selection.matches]


def scores(ranked: Sequence[str], relevant: frozenset[str], exclude: frozenset[str] = frozenset()) -> dict[str, float]:
    """Recall, precision, F1 and nDCG@20 (binary gains) of a ranked list; `exclude` (the example
    papers, which the reader already has) counts neither way."""
    shown = [pid for pid in ranked if pid not in exclude]
    wanted = relevant - exclude
    hits = sum(1 for pid in shown if pid in wanted)
    recall = hits / len(wanted) if wanted else 0.0
    precision = hits / len(shown) if shown else 0.0
    f1 = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    dcg = sum(1 / math.log2(rank + 2) for rank, pid in enumerate(shown[:NDCG_AT]) if pid in wanted)
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(NDCG_AT, len(wanted))))
    return {"recall": recall, "precision": precision, "f1": f1, "ndcg@20": dcg / ideal if ideal else 0.0}


def _macro(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {m: sum(r[m] for r in rows) / len(rows) if rows else 0.0 for m in METRICS}


def evaluate_methods(index: PaperIndex, interests: Sequence[Interest]) -> dict[str, Any]:
    """Per interest and method the scores (and how many papers were shown), and the macro averages."""
    per: dict[str, dict[str, dict[str, float]]] = {}
    for interest in interests:
        exclude = frozenset(interest.examples)
        per[interest.name] = {}
        for method in METHODS:
            ranked = ranked_ids(index, topics_for(interest, method))
            row = scores(ranked, interest.relevant, exclude)
            row["shown"] = float(len([p for p in ranked if p not in exclude]))
            per[interest.name][method] = row
    macro = {method: _macro([per[i.name][method] for i in interests]) for method in METHODS}
    return {"per_interest": per, "macro": macro}


@contextmanager
def thresholds(text: float | None = None, paper: float | None = None) -> Iterator[None]:
    """Temporarily other `digest.semantic` thresholds (read by `like_hits` at each call)."""
    saved = digest.semantic.TEXT_THRESHOLD, digest.semantic.PAPER_THRESHOLD
    if text is not None:
        digest.semantic.TEXT_THRESHOLD = text
    if paper is not None:
        digest.semantic.PAPER_THRESHOLD = paper
    try:
        yield
    finally:
        digest.semantic.TEXT_THRESHOLD, digest.semantic.PAPER_THRESHOLD = saved


def sweep(
    make_index: Callable[[], PaperIndex],
    interests: Sequence[Interest],
    text_values: Sequence[float] = TEXT_SWEEP,
    paper_values: Sequence[float] = PAPER_SWEEP,
) -> dict[str, Any]:
    """Macro scores of the semantic method per TEXT_THRESHOLD and of the examples method per
    PAPER_THRESHOLD (a fresh index each time: it caches what `like:` terms found), and the best by F1."""
    out: dict[str, Any] = {}
    for kind, method, values in (("text", "semantic", text_values), ("paper", "examples", paper_values)):
        rows = []
        for value in values:
            with thresholds(**{kind: value}):
                index = make_index()
                per = [
                    scores(ranked_ids(index, topics_for(i, method)), i.relevant, frozenset(i.examples))
                    for i in interests
                ]
            rows.append({"threshold": value, **_macro(per)})
        current = digest.semantic.TEXT_THRESHOLD if kind == "text" else digest.semantic.PAPER_THRESHOLD
        best = max(rows, key=lambda r: (r["f1"], -abs(r["threshold"] - current)))
        out[kind] = {"current": current, "rows": rows, "best": best}
    return out


def _ndcg(ranked: Sequence[str], wanted: frozenset[str]) -> float | None:
    """nDCG@20, None when nothing wanted is left (undefined: left out of averages)."""
    return scores(ranked, wanted)["ndcg@20"] if wanted else None


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def votes_method(
    index: PaperIndex, interest: Interest, digests: int = DIGESTS, shown: int = SHOWN, seed: int = 0
) -> dict[str, list[float | None]]:
    """A simulated reader over `digests` digests of the combined method's papers: each digest shows
    the next `shown` papers not shown before, in the current order; the reader votes on every one
    of them from the labels (+1 relevant, −1 not; the examples count as liked), digest/rank.py is
    retrained on (vectors, votes) and the rest re-ranked by its score. Per digest: nDCG@20 of the
    papers not yet shown, as ranked then by the learned model and by the plain topic ranking (None
    once no wanted paper is left)."""
    from digest import rank

    vectors = index.vectors
    assert vectors is not None
    place = {p.id: k for k, p in enumerate(index.papers)}
    remaining = [pid for pid in ranked_ids(index, topics_for(interest, "combined")) if pid not in interest.examples]
    static = list(remaining)
    liked = [pid for pid in interest.examples if pid in place]
    disliked: list[str] = []
    out: dict[str, list[float | None]] = {"learned": [], "static": []}
    for digest_no in range(digests):
        batch, remaining = remaining[:shown], remaining[shown:]
        liked += [pid for pid in batch if pid in interest.relevant]
        disliked += [pid for pid in batch if pid not in interest.relevant]
        voted = {place[pid] for pid in liked + disliked}
        pool = vectors.matrix[[k for k in range(len(index.papers)) if k not in voted]]
        weights = rank.train(
            vectors.matrix[[place[p] for p in liked]],
            vectors.matrix[[place[p] for p in disliked]],
            rank.weak_negatives(pool, rank.WEAK_NEGATIVES * len(liked), seed + digest_no),
        )
        if weights is not None and remaining:
            model = rank.Learned(weights, [], vectors.matrix[[place[p] for p in disliked]])
            score = model.scores(vectors.matrix[[place[p] for p in remaining]])
            remaining = [remaining[k] for k in np.argsort(-score, kind="stable")]
        left = frozenset(remaining)
        static = [pid for pid in static if pid in left]
        out["learned"].append(_ndcg(remaining, interest.relevant & left))
        out["static"].append(_ndcg(static, interest.relevant & left))
    return out


def evaluate_votes(index: PaperIndex, interests: Sequence[Interest]) -> dict[str, Any] | None:
    """`votes_method` for every interest and its macro average per digest; None without
    digest/rank.py (the per-reader ranking)."""
    try:
        import digest.rank  # noqa: F401
    except ImportError:
        return None
    per = {i.name: votes_method(index, i) for i in interests}
    macro = {
        kind: [_mean([per[i.name][kind][d] for i in interests]) for d in range(DIGESTS)]
        for kind in ("learned", "static")
    }
    return {"per_interest": per, "macro": macro, "digests": DIGESTS, "shown": SHOWN}


def run(
    papers: Sequence[dict[str, Any]],
    interests: Sequence[Interest],
    embedder: Embedder,
    *,
    cache: Path | None = CACHE,
    sweep_thresholds: bool = True,
) -> dict[str, Any]:
    """The whole evaluation: embed (cached), index, score every interest × method, sweep thresholds."""
    vectors = embed_papers(papers, embedder, cache)

    def make_index() -> PaperIndex:
        return build_index(papers, vectors, embedder)

    index = make_index()
    report = evaluate_methods(index, interests)
    votes = evaluate_votes(index, interests)
    if votes is not None:
        report["votes"] = votes
    report["papers"] = len(papers)
    report["interests"] = {i.name: {"relevant": len(i.relevant), "judged": len(i.judged)} for i in interests}
    report["model"] = embedder.name
    report["thresholds"] = {
        "TEXT_THRESHOLD": digest.semantic.TEXT_THRESHOLD,
        "PAPER_THRESHOLD": digest.semantic.PAPER_THRESHOLD,
    }
    if sweep_thresholds:
        report["sweep"] = sweep(make_index, interests)
    return report


def check_labels(papers: Sequence[dict[str, Any]], interests: Sequence[Interest]) -> list[str]:
    """What is inconsistent in the labels: unknown ids, queries that do not parse, few relevant."""
    ids = {p["id"] for p in papers}
    problems = []
    for interest in interests:
        try:
            parse_query(interest.query)
        except ValueError as error:
            problems.append(f"{interest.name}: query does not parse: {error}")
        problems += [f"{interest.name}: example {pid} not in papers" for pid in interest.examples if pid not in ids]
        problems += [f"{interest.name}: labelled {pid} not in papers" for pid in sorted(interest.judged - ids)]
        problems += [
            f"{interest.name}: example {pid} not labelled relevant"
            for pid in interest.examples
            if pid not in interest.relevant
        ]
    return problems


def subset(
    papers: Sequence[dict[str, Any]], interests: Sequence[Interest], limit: int
) -> tuple[list[dict[str, Any]], list[Interest]]:
    """The first `limit` papers plus every example paper, with each interest's labels cut to them
    (a small, consistent set for quick runs and tests)."""
    wanted = {pid for i in interests for pid in i.examples}
    kept = [p for k, p in enumerate(papers) if k < limit or p["id"] in wanted]
    ids = frozenset(p["id"] for p in kept)
    return kept, [
        Interest(i.name, i.query, i.description, i.examples, i.relevant & ids, i.judged & ids) for i in interests
    ]
