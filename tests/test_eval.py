"""The relevance evaluation (bench/eval): its labels are consistent, and a run on a small subset
reports every interest × method (over the set and as daily digests) and every simulated reader with
metrics in [0, 1]. Uses FakeEmbedder: fast, offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bench.eval.evaluate as ev
from bench.eval.assemble import SAMPLES
from bench.eval.evaluate import (
    DAILY,
    METHODS,
    METRICS,
    Days,
    Interest,
    build_index,
    check_labels,
    digest_scores,
    embed_papers,
    held_out,
    load_interests,
    load_papers,
    run,
    scores,
    subset,
)
from bench.eval.report import markdown
from digest import rank
from digest.embed import FakeEmbedder
from digest.query import parse_query


def test_labels_are_consistent() -> None:
    papers, interests = load_papers(), load_interests()
    ids = {p["id"] for p in papers}
    assert len(ids) == len(papers) >= 1000
    assert len(interests) >= 8
    assert check_labels(papers, interests) == []
    for interest in interests:
        parse_query(interest.query)
        assert set(interest.examples) <= interest.relevant <= ids
        assert interest.judged <= ids
        assert len(interest.relevant) >= 15


def test_the_samples_have_their_real_ids() -> None:
    """bench/eval's sample rows are digest/samples/papers.json's papers, by their real ids."""
    samples = {p["id"] for p in json.loads(SAMPLES.joinpath("papers.json").read_text())}
    rows = {p["id"] for p in load_papers() if p["source"].startswith("sample:")}
    assert rows == samples


def test_a_small_run_reports_every_interest_and_method(tmp_path: Path) -> None:
    papers, interests = subset(load_papers(), load_interests(), 120)
    report = run(papers, interests, FakeEmbedder(dim=64), cache=tmp_path, sweep_thresholds=True)
    assert set(report["per_interest"]) == {i.name for i in interests}
    for rows in report["per_interest"].values():
        assert set(rows) == set(METHODS)
        for row in rows.values():
            assert all(0.0 <= row[m] <= 1.0 for m in (*METRICS, *DAILY))
    for row in report["macro"].values():
        assert all(0.0 <= row[m] <= 1.0 for m in (*METRICS, *DAILY))
    for kind in ("text", "paper", "pair"):
        sweep = report["sweep"][kind]
        assert sweep["best"]["threshold"] in [r["threshold"] for r in sweep["rows"]]
        assert len(sweep["held_out"]["chosen"]) == len(interests)
    assert sum(report["days"]) == len(papers)
    variants = report["votes"]["variants"]
    assert set(variants) == set(ev.VARIANTS)
    # The reader who never learns gets exactly the combined method's daily digests.
    assert variants["topic order"]["macro"]["daily recall"] == pytest.approx(
        report["macro"]["combined"]["daily recall"]
    )
    for variant in variants.values():
        assert set(variant["per_interest"]) == {i.name for i in interests}
        for row in variant["per_interest"].values():
            assert all(0.0 <= row[m] <= 1.0 for m in DAILY)
            assert all(v is None or 0.0 <= v <= 1.0 for v in row["digest ndcg"] + row["digest precision"])
    for values in report["backlog"]["macro"].values():
        assert values == sorted(values)  # the share seen only grows
    _check_confirm(report, len(interests))
    where = report["boolean_where"]  # every boolean match counted once, in the title or only with the abstract
    boolean = sum(row["boolean"]["shown"] for row in report["per_interest"].values())
    assert where["title"]["matched"] + where["abstract only"]["matched"] == boolean
    assert all(0 <= part["wanted"] <= part["matched"] for part in where.values())
    text = markdown(report)
    assert "| boolean match | papers | wanted | share wanted |" in text
    assert all(i.name in text for i in interests)
    assert "## The issue's targets" in text
    assert "## Semantic confirmation of the boolean matches" in text


def _check_confirm(report: dict[str, Any], interests: int) -> None:
    """The confirm / veto prototypes: metrics in [0, 1], a choice per interest, and the settings
    that are today's methods give today's methods' figures."""
    confirm = report["confirm"]
    for name in ("confirm", "score"):
        assert len(confirm[name]["held_out"]["chosen"]) == interests
        for row in (*confirm[name]["rows"], confirm[name]["held_out"], confirm[name]["held_out_recall"]):
            assert all(0.0 <= row[m] <= 1.0 for m in (*METRICS, *DAILY))
        assert len(confirm[name]["held_out_recall"]["chosen"]) == interests
    # Floor 0 with today's thresholds is the combined method, over the set and as daily digests.
    today = next(r for r in confirm["confirm"]["rows"] if r["setting"] == [0.0, 0.45, 0.55])
    for metric in ("recall", "precision", "ndcg@20", "daily recall", "daily precision"):
        assert today[metric] == pytest.approx(report["macro"]["combined"][metric])
    # Floor 0 without additions is the boolean method; the first order is the combined method's.
    alone = next(r for r in confirm["confirm"]["rows"] if r["setting"] == [0.0, 1.01, 1.01])
    assert alone["recall"] == pytest.approx(report["macro"]["boolean"]["recall"])
    assert confirm["order"]["rows"][0]["ndcg@20"] == pytest.approx(report["macro"]["combined"]["ndcg@20"])
    kept = [r["wanted"] for r in confirm["veto"]]
    assert kept == sorted(kept, reverse=True)  # a higher floor keeps fewer


def test_scores() -> None:
    wanted = frozenset({"a", "b"})
    assert scores(["a", "x", "b"], wanted)["recall"] == 1.0
    assert scores(["a", "x", "b"], wanted)["precision"] == pytest.approx(2 / 3)
    assert scores(["a", "b"], wanted)["ndcg@20"] == pytest.approx(1.0)
    assert scores([], wanted) == {"recall": 0.0, "precision": 0.0, "f1": 0.0, "ndcg@20": 0.0, "p@25": 0.0}
    assert scores(["a"], wanted, exclude=frozenset({"a"}))["precision"] == 0.0
    # P@25: the first 25 shown only.
    assert scores(["a"] + [f"x{k}" for k in range(24)] + ["b"], wanted)["p@25"] == pytest.approx(1 / 25)


def _index(count: int = 40) -> Any:
    papers = [
        {"id": f"2501.{k:05d}", "title": f"paper {k}", "abstract": "words", "categories": []} for k in range(count)
    ]
    embedder = FakeEmbedder(dim=16)
    return papers, build_index(papers, embed_papers(papers, embedder, None), embedder)


def test_days_split_the_papers_the_same_way_every_time() -> None:
    _papers, index = _index()
    days = Days.of_index(index)
    assert len(days.masks) == ev.DAYS
    union = 0
    for mask in days.masks:
        assert mask & union == 0
        union |= mask
    assert union == index.all
    assert Days.of_index(index) == days


def test_digest_scores_count_what_the_digests_showed() -> None:
    days = Days({"a": 0, "b": 1, "c": 1, "x": 0}, (0, 0))
    interest = Interest("i", "q", "d", ("c",), frozenset({"a", "b", "c"}), frozenset())
    got = digest_scores([["x", "a"], []], interest, days)  # b never shown; c is an example
    assert got["daily recall"] == pytest.approx(1 / 2)
    assert got["daily precision"] == pytest.approx(1 / 2)
    assert got["daily ndcg@20"] == pytest.approx(((1 / np.log2(3)) / 1 + 0.0) / 2)


def test_weak_negatives_come_only_from_the_pool_and_never_from_votes(monkeypatch: pytest.MonkeyPatch) -> None:
    _papers, index = _index()
    seen: dict[str, Any] = {}

    def train(liked: Any, disliked: Any, unvoted: Any) -> None:
        seen["unvoted"] = unvoted

    monkeypatch.setattr(rank, "train", train)
    ids = [p.id for p in index.papers]
    liked, disliked, arrived = ids[:3], ids[3:5], ids[:12]
    ev._learned(index, liked, disliked, index.mask_of_ids(arrived), seed=1)
    matrix = index.vectors.matrix
    allowed = {tuple(matrix[index.position[p]]) for p in arrived[5:]}
    assert 0 < len(seen["unvoted"]) <= rank.WEAK_NEGATIVES * len(liked)
    assert all(tuple(row) in allowed for row in seen["unvoted"])


def test_held_out_chooses_on_the_other_interests() -> None:
    good, bad = {"f1": 1.0}, {"f1": 0.0}
    full = {m: 0.0 for m in METRICS}
    at_4 = [{**full, **good}, {**full, **good}, {**full, **good}, {**full, **bad}]
    at_5 = [{**full, **bad}, {**full, **bad}, {**full, **bad}, {**full, **good}]
    got = held_out([at_4, at_5], [0.4, 0.5], current=0.5)
    # Interest 4 alone prefers 0.5, but the other three choose 0.4 for it.
    assert got["chosen"] == [0.4, 0.4, 0.4, 0.4]
    assert got["f1"] == pytest.approx(3 / 4)
