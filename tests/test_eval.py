"""The relevance evaluation (bench/eval): its labels are consistent, and a run on a small subset
reports every interest × method with metrics in [0, 1]. Uses FakeEmbedder: fast, offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.eval.evaluate import METHODS, METRICS, check_labels, load_interests, load_papers, run, scores, subset
from bench.eval.report import markdown
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


def test_a_small_run_reports_every_interest_and_method(tmp_path: Path) -> None:
    papers, interests = subset(load_papers(), load_interests(), 120)
    report = run(papers, interests, FakeEmbedder(dim=64), cache=tmp_path, sweep_thresholds=True)
    assert set(report["per_interest"]) == {i.name for i in interests}
    for rows in report["per_interest"].values():
        assert set(rows) == set(METHODS)
        for row in rows.values():
            assert all(0.0 <= row[m] <= 1.0 for m in METRICS)
    for row in report["macro"].values():
        assert all(0.0 <= row[m] <= 1.0 for m in METRICS)
    for kind in ("text", "paper"):
        assert report["sweep"][kind]["best"]["threshold"] in [r["threshold"] for r in report["sweep"][kind]["rows"]]
    if "votes" in report:  # digest/rank.py is there
        assert set(report["votes"]["per_interest"]) == {i.name for i in interests}
        for row in report["votes"]["per_interest"].values():
            assert all(v is None or 0.0 <= v <= 1.0 for kind in ("learned", "static") for v in row[kind])
    text = markdown(report)
    assert all(i.name in text for i in interests)


def test_scores() -> None:
    wanted = frozenset({"a", "b"})
    assert scores(["a", "x", "b"], wanted)["recall"] == 1.0
    assert scores(["a", "x", "b"], wanted)["precision"] == pytest.approx(2 / 3)
    assert scores(["a", "b"], wanted)["ndcg@20"] == pytest.approx(1.0)
    assert scores([], wanted) == {"recall": 0.0, "precision": 0.0, "f1": 0.0, "ndcg@20": 0.0}
    assert scores(["a"], wanted, exclude=frozenset({"a"}))["precision"] == 0.0
