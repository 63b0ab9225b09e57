"""A ranking per reader: training on fixed vectors (pure), then votes stored in the database
ordering a real digest and bringing a "recommended for you" section (sent over SMTP)."""

from __future__ import annotations

import time
from datetime import timedelta

import numpy as np
from sqlmodel import Session, select

from digest.config import Settings
from digest.embed import to_bytes
from digest.learning import learned_for, retrain
from digest.models import Delivery, Paper, ReaderModel, Vote
from digest.pipeline import run_send
from digest.rank import MIN_LIKES, Example, Learned, _solve, judge_all, train
from digest.send import make_transport
from tests.conftest import NOW
from tests.factories import add_papers, paper, subscriber
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401  (the fixture)

DIM = 8
RNG = np.random.default_rng(7)


def around(axis: int, n: int, spread: float = 0.15) -> np.ndarray:
    """`n` unit vectors near one axis."""
    rows = np.zeros((n, DIM), dtype=np.float32)
    rows[:, axis] = 1.0
    rows += RNG.normal(0, spread, (n, DIM)).astype(np.float32)
    unit: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


def test_no_model_below_the_minimum_of_likes() -> None:
    assert train(around(0, MIN_LIKES - 1), around(1, 5), around(2, 20)) is None


def test_a_model_prefers_what_was_liked_over_what_was_not_and_trains_in_milliseconds() -> None:
    started = time.perf_counter()
    weights = train(around(0, 5), around(1, 2), np.vstack([around(a, 8) for a in range(1, DIM)]))
    elapsed = time.perf_counter() - started
    assert weights is not None and weights.shape == (DIM + 1,)
    learned = Learned(weights, [], np.zeros((0, DIM), dtype=np.float32))
    liked_like, disliked_like, other = learned.scores(np.vstack([around(0, 1), around(1, 1), around(5, 1)]))
    assert liked_like > 0.7 > max(disliked_like, other)
    print(f"trained in {elapsed * 1000:.1f} ms")  # measured in `make bench`; shown here for the curious


def test_less_like_this_keeps_near_duplicates_out_and_reasons_name_the_closest_liked() -> None:
    liked = [Example(f"l{n}", f"Liked {n}", v) for n, v in enumerate(np.eye(DIM, dtype=np.float32)[:3])]
    learned = Learned(None, liked, np.eye(DIM, dtype=np.float32)[[5]])
    close, far = np.eye(DIM, dtype=np.float32)[5] * 0.99 + 0.01, np.eye(DIM, dtype=np.float32)[6]
    assert learned.unwanted(np.vstack([close / np.linalg.norm(close), far])).tolist() == [True, False]
    assert learned.because(np.eye(DIM, dtype=np.float32)[1]) == "like Liked 1, which you liked"


def _embedded(session: Session, pid: str, title: str, vector: np.ndarray, hours: float = 3) -> None:
    row = paper(pid, title, "An abstract about agents.", first_seen=NOW - timedelta(hours=hours))
    row.embedding, row.embedding_model = to_bytes(vector), "minilm-int8"
    add_papers(session, row)


def _vote(session: Session, sid: int, pid: str, value: int) -> None:
    session.add(Vote(subscriber_id=sid, paper_id=pid, value=value, created_at=NOW - timedelta(days=2)))
    session.commit()


def test_votes_order_the_digest_and_bring_recommendations(
    session: Session, settings: Settings, smtp_server: SmtpServer
) -> None:
    sub = subscriber(session, "voter@example.org", ["agents"], joined=NOW - timedelta(days=30))
    assert sub.id is not None
    # Last week: papers the reader voted on (liked: near axis 0; disliked: near axis 1).
    for n, vector in enumerate(around(0, 4)):
        _embedded(session, f"2611.1000{n}", f"Liked agents paper {n}", vector, hours=24 * 5)
        _vote(session, sub.id, f"2611.1000{n}", +1)
    _embedded(session, "2611.10009", "Disliked agents paper", around(1, 1)[0], hours=24 * 5)
    _vote(session, sub.id, "2611.10009", -1)
    for n, vector in enumerate(around(3, 12)):  # the rest of last week: weak negatives
        _embedded(session, f"2611.1100{n:02d}", f"Other paper {n}", vector, hours=24 * 6)
    # Today: on the topic, one like what was liked, one near-duplicate of the disliked, one neither;
    # and one paper no topic matches that is very like what was liked.
    _embedded(session, "2611.20001", "Plain agents paper", around(4, 1)[0])
    _embedded(session, "2611.20002", "Agents paper close to the likes", around(0, 1, 0.05)[0])
    _embedded(session, "2611.20003", "Agents paper like the dislike", around(1, 1, 0.02)[0])
    unmatched = paper(
        "2611.20004", "Protein folding with graphs", "Nothing on the topic.", first_seen=NOW - timedelta(hours=3)
    )
    unmatched.embedding, unmatched.embedding_model = to_bytes(around(0, 1, 0.05)[0]), "minilm-int8"
    add_papers(session, unmatched)

    settings = settings.model_copy(update={"smtp_url": smtp_server.url, "smtp_timeout": 5.0})
    run_send(session, settings, make_transport(settings), NOW)
    (received,) = [m.message for m in smtp_server.to("voter@example.org")]
    text = str(received.get_body(("plain",)).get_content()).replace("\r\n", "\n")  # type: ignore[union-attr]
    assert text.index("Agents paper close to the likes") < text.index("Plain agents paper")  # liked-like first
    assert "Agents paper like the dislike" not in text  # "less like this" keeps its near-duplicates out
    assert text.index("RECOMMENDED FOR YOU") < text.index("Protein folding with graphs")
    assert "like Liked agents paper" in text.split("Protein folding with graphs")[1].split("\n\n")[0]
    (row,) = session.exec(select(Delivery)).all()
    assert (row.paper_ids[-1], row.recommended_count) == ("2611.20004", 1)
    model = session.exec(select(ReaderModel)).one()  # trained by the send run: votes were newer
    assert model.votes == 5


def test_a_model_is_retrained_when_votes_change_and_dropped_below_the_minimum(
    session: Session, settings: Settings
) -> None:
    sub = subscriber(session, "v@example.org", ["x"], joined=NOW - timedelta(days=30))
    assert sub.id is not None
    for n, vector in enumerate(around(0, 3)):
        _embedded(session, f"2611.3000{n}", f"P{n}", vector)
        _vote(session, sub.id, f"2611.3000{n}", +1)
    assert retrain(session, settings, sub.id, NOW) is not None
    first = session.exec(select(ReaderModel)).one().trained_at
    assert learned_for(session, settings, [sub.id], NOW + timedelta(hours=1))[sub.id].weights is not None
    assert session.exec(select(ReaderModel)).one().trained_at == first  # up to date: not retrained
    vote = session.exec(select(Vote).where(Vote.paper_id == "2611.30000")).one()
    session.delete(vote)
    session.commit()
    learned = learned_for(session, settings, [sub.id], NOW + timedelta(hours=2))
    assert learned[sub.id].weights is None and session.exec(select(ReaderModel)).all() == []
    assert session.get(Paper, "2611.30000") is not None


def test_the_newton_step_through_the_votes_system_is_the_direct_one() -> None:
    """With fewer votes than dimensions the step is solved as rows × rows (Woodbury): the same."""
    rng = np.random.default_rng(7)
    for n, dim in ((5, 40), (30, 385), (60, 20)):
        a = rng.normal(size=(n, dim))
        diag = np.full(dim, 0.1 + 1e-6)
        diag[-1] = 1e-6
        g = rng.normal(size=dim)
        direct = np.linalg.solve(a.T @ a + np.diag(diag), g)
        assert np.allclose(_solve(a, diag, g), direct, rtol=1e-6, atol=1e-6 * np.abs(direct).max())


def test_one_pass_gives_the_scores_and_the_near_duplicates_of_less_like_this() -> None:
    rng = np.random.default_rng(3)
    matrix = rng.normal(size=(50, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    weights = rng.normal(size=9).astype(np.float32)
    disliked = matrix[[4, 9]] * 0.999
    scores, unwanted = Learned(weights, [], disliked).judge(matrix)
    assert scores is not None
    assert np.allclose(scores, 1 / (1 + np.exp(-(matrix.astype(np.float64) @ weights[:-1] + weights[-1]))), atol=1e-5)
    assert set(np.flatnonzero(unwanted)) >= {4, 9}
    assert np.array_equal(unwanted, (matrix @ disliked.T).max(axis=1) >= 0.9)
    no_model, only_dislikes = Learned(None, [], disliked).judge(matrix)
    assert no_model is None and np.array_equal(only_dislikes, unwanted)
    assert Learned(weights, [], np.zeros((0, 8), dtype=np.float32)).unwanted(matrix).sum() == 0


def test_judging_a_chunk_at_once_is_judging_each_reader() -> None:
    rng = np.random.default_rng(5)
    matrix = rng.normal(size=(40, 8)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    readers = {
        1: Learned(rng.normal(size=9).astype(np.float32), [], matrix[[2]]),
        2: Learned(None, [], matrix[[5, 6]]),
        3: Learned(rng.normal(size=9).astype(np.float32), [], np.zeros((0, 8), dtype=np.float32)),
        4: Learned(None, [], np.zeros((0, 8), dtype=np.float32)),
    }
    judged = judge_all(readers, matrix)
    for key, one in readers.items():
        alone, together = one.judge(matrix), judged[key].judge(matrix)
        assert (alone[0] is None) == (together[0] is None)
        if alone[0] is not None and together[0] is not None:
            assert np.allclose(alone[0], together[0], atol=1e-6)
        assert np.array_equal(alone[1], together[1])
    assert judged[1].judged is not None and readers[1].judged is None  # a copy: the reader's own is kept
