"""Paper embeddings: the real MiniLM model end to end on stored papers, the bookkeeping of
`embed_missing` (with the fake embedder), DIGEST_EMBEDDING_MODEL=none, and `digest embed`."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import timedelta

import numpy as np
import pytest
import redis
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from bench.celery_process import child_environment
from digest.cli import app
from digest.config import Settings, SourceKind
from digest.db import init_db, make_engine, open_session
from digest.demo import SAMPLES
from digest.embed import (
    MINILM,
    FakeEmbedder,
    Vectors,
    embed_missing,
    from_bytes,
    load_embedder,
    missing,
    paper_text,
    stored_vectors,
    to_bytes,
)
from digest.ingest import ingest_bytes
from digest.models import Paper
from tests.conftest import FIXTURES, NOW, FreshDatabase, port_open, require
from tests.factories import add_papers, paper

REDIS_URL = "redis://127.0.0.1:6379/10"  # a db of its own: other tests flush theirs

PROTEINS = paper(
    "2611.09999",
    "Predicting protein folding with graph networks",
    "We predict the three-dimensional structure of proteins from their amino-acid sequence.",
    first_seen=NOW - timedelta(days=2),
    categories=("q-bio.BM",),
)
KV_CACHE = next(p for p in json.loads((SAMPLES / "papers.json").read_text()) if p["id"] == "2506.11418")
FEED = FIXTURES / "feed-arxiv-rss.xml"  # 6 papers on long contexts (and 2 replacements, skipped)


def _ingest_fixture(session: Session) -> int:
    """The saved arXiv RSS fixture through the real ingest, then a sample paper on KV caches
    ("Efficient Long-Context LLM Inference via KV Cache Clustering") and one on proteins."""
    _, new, _ = ingest_bytes(session, FEED.read_bytes(), SourceKind.ARXIV_RSS, "arxiv", NOW)
    kv = paper(KV_CACHE["id"], KV_CACHE["title"], KV_CACHE["abstract"], first_seen=NOW - timedelta(days=1))
    add_papers(session, kv, paper(PROTEINS.id, PROTEINS.title, PROTEINS.abstract, first_seen=PROTEINS.first_seen))
    return new + 2


def _vectors(session: Session, model: str) -> dict[str, Vectors]:
    session.expire_all()
    return stored_vectors(list(session.exec(select(Paper))), model)


def test_the_real_model_embeds_stored_papers(session: Session, fresh_database: FreshDatabase) -> None:
    embedder = load_embedder(MINILM)
    assert embedder is not None and (embedder.name, embedder.dim) == (MINILM, 384)
    total = _ingest_fixture(session)
    assert missing(session, MINILM) == total
    assert embed_missing(session, embedder) == total
    vectors = _vectors(session, MINILM)
    assert len(vectors) == total and missing(session, MINILM) == 0
    for vector in vectors.values():
        assert vector.shape == (384,) and vector.dtype == np.float32
        assert abs(float(np.linalg.norm(vector)) - 1.0) < 1e-3
    query = embedder.embed(["KV cache compression"])[0]
    assert float(vectors[KV_CACHE["id"]] @ query) > float(vectors[PROTEINS.id] @ query) + 0.2
    # Alone, outside its batch, a paper gets (nearly) the vector stored for it.
    alone = embedder.embed([paper_text(session.get(Paper, KV_CACHE["id"]))])[0]  # type: ignore[arg-type]
    assert float(alone @ vectors[KV_CACHE["id"]]) > 0.99

    # The same papers in another database: the very same bytes (deterministic across runs).
    other = make_engine(fresh_database("again"))
    init_db(other)
    with open_session(other) as again:
        _ingest_fixture(again)
        assert embed_missing(again, embedder) == total
        assert {k: v.tobytes() for k, v in _vectors(again, MINILM).items()} == {
            k: v.tobytes() for k, v in vectors.items()
        }
    other.dispose()


def test_the_embedder_is_loaded_once_per_process() -> None:
    assert load_embedder(MINILM) is load_embedder(MINILM)
    assert load_embedder("none") is None
    with pytest.raises(ValueError, match="unknown embedding model"):
        load_embedder("word2vec")


def test_a_long_abstract_is_cut_and_batches_keep_their_order() -> None:
    embedder = load_embedder(MINILM)
    assert embedder is not None
    texts = ["KV cache compression " * 200, "protein folding", "", "KV cache compression"]
    vectors = embedder.embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert float(vectors[0] @ vectors[3]) > float(vectors[1] @ vectors[3])
    assert embedder.embed([]).shape == (0, 384)


def test_embedding_twice_embeds_nothing_the_second_time(session: Session) -> None:
    fake = FakeEmbedder()
    total = _ingest_fixture(session)
    steps: list[int] = []
    assert embed_missing(session, fake, batch=4, progress=steps.append) == total
    assert steps == [4, 4]
    assert embed_missing(session, fake, batch=4) == 0
    assert len(_vectors(session, "fake")) == total


def test_newest_first_and_at_most_limit(session: Session) -> None:
    add_papers(session, *(paper(f"2611.0000{i}", f"Paper {i}", first_seen=NOW - timedelta(hours=i)) for i in range(5)))
    assert embed_missing(session, FakeEmbedder(), batch=2, limit=3) == 3
    assert sorted(_vectors(session, "fake")) == ["2611.00000", "2611.00001", "2611.00002"]


def test_another_model_embeds_the_papers_again(session: Session) -> None:
    add_papers(session, paper("2611.00001", "Paper one", first_seen=NOW), paper("2611.00002", "Two", first_seen=NOW))
    embed_missing(session, FakeEmbedder())
    other = FakeEmbedder(dim=8)
    other.name = "fake-8"
    assert missing(session, "fake-8") == 2 and missing(session, "fake") == 0
    assert embed_missing(session, other) == 2
    assert {v.shape for v in _vectors(session, "fake-8").values()} == {(8,)}
    assert _vectors(session, "fake") == {}  # each paper keeps the vector of one model


class SlowFake(FakeEmbedder):
    """The fake, taking its time: two workers overlap on the same papers."""

    def embed(self, texts: Sequence[str]) -> Vectors:
        time.sleep(0.2)
        return super().embed(texts)


def test_two_workers_at_once_store_each_paper_once(settings: Settings, session: Session) -> None:
    add_papers(
        session, *(paper(f"2611.{i:05d}", f"Paper {i}", first_seen=NOW - timedelta(minutes=i)) for i in range(40))
    )
    engine = make_engine(settings.database_url)
    stored: list[int] = []

    def work() -> None:
        with open_session(engine) as own:
            stored.append(embed_missing(own, SlowFake(), batch=8))

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    engine.dispose()
    # Whatever the interleaving, every paper is stored once: a duplicate batch is thrown away.
    assert sum(stored) + embed_missing(session, FakeEmbedder()) == 40
    assert len(_vectors(session, "fake")) == 40


def test_vectors_are_stored_as_little_endian_float16() -> None:
    vector = FakeEmbedder().embed(["kv cache compression"])[0]
    blob = to_bytes(vector)
    assert len(blob) == 16 * 2 and np.allclose(from_bytes(blob), vector, atol=1e-3)
    assert from_bytes(blob).dtype == np.float32


def test_the_fake_embedder_is_deterministic_and_word_based() -> None:
    a, b, c = FakeEmbedder().embed(["kv cache compression", "KV cache", "protein folding"])
    assert np.array_equal(a, FakeEmbedder().embed(["kv cache compression"])[0])
    assert float(a @ b) > float(a @ c)


@pytest.fixture
def cli_env(settings: Settings) -> dict[str, str]:
    return child_environment(
        DIGEST_DATABASE_URL=settings.database_url, DIGEST_SOURCES="[]", DIGEST_SECRET_KEY="embed-test-secret-key"
    )


def _count_embedded(url: str, model: str = MINILM) -> int:
    engine = make_engine(url)
    with open_session(engine) as session:
        n = len(list(session.exec(select(Paper.id).where(col(Paper.embedding_model) == model))))
    engine.dispose()
    return n


def test_cli_fetch_file_embeds_in_the_same_run_and_embed_finds_nothing_left(cli_env: dict[str, str]) -> None:
    fetched = CliRunner().invoke(app, ["fetch", "--file", str(FEED), "--kind", "arxiv-rss"], env=cli_env)
    assert fetched.exit_code == 0, fetched.output
    assert "6 papers parsed, 6 new" in fetched.output and "6 papers embedded (minilm-int8)" in fetched.output
    assert _count_embedded(cli_env["DIGEST_DATABASE_URL"]) == 6
    again = CliRunner().invoke(app, ["embed"], env=cli_env)
    assert again.exit_code == 0 and again.output.strip() == "0 papers embedded (minilm-int8)"


def test_cli_embed_embeds_what_is_missing(cli_env: dict[str, str], session: Session) -> None:
    _ingest_fixture(session)
    result = CliRunner().invoke(app, ["embed"], env=cli_env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "8 papers embedded (minilm-int8)"
    assert _count_embedded(cli_env["DIGEST_DATABASE_URL"]) == 8


def test_none_turns_embedding_off(cli_env: dict[str, str]) -> None:
    off = {**cli_env, "DIGEST_EMBEDDING_MODEL": "none"}
    fetched = CliRunner().invoke(app, ["fetch", "--file", str(FEED), "--kind", "arxiv-rss"], env=off)
    assert fetched.exit_code == 0 and "embedded" not in fetched.output
    result = CliRunner().invoke(app, ["embed"], env=off)
    assert result.output.strip() == "embedding is off (DIGEST_EMBEDDING_MODEL=none): nothing embedded"
    assert _count_embedded(cli_env["DIGEST_DATABASE_URL"]) == 0
    bad = CliRunner().invoke(app, ["embed"], env={**cli_env, "DIGEST_EMBEDDING_MODEL": "word2vec"})
    assert bad.exit_code == 1 and "bad configuration DIGEST_EMBEDDING_MODEL" in bad.output


def test_beat_embeds_hourly_as_a_safety_net(settings: Settings) -> None:
    from workers.beat import TASKS, beat_schedule

    schedule = beat_schedule(settings)
    assert schedule["embed-papers-hourly"]["task"] == "digest.embed_papers"
    assert set(schedule) == set(TASKS)  # DIGEST_BEAT_EVERY_SECONDS runs the same tasks


def test_text_the_tokenizer_would_refuse_is_embedded_anyway() -> None:
    embedder = load_embedder(MINILM)
    assert embedder is not None
    assert embedder.embed(["a lone \ud800 surrogate", "\x00"]).shape == (2, 384)


def test_a_failed_embedding_never_fails_the_fetch(cli_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> int:
        raise RuntimeError("model file is gone")

    monkeypatch.setattr("digest.cli.embed_with_progress", broken)
    fetched = CliRunner().invoke(app, ["fetch", "--file", str(FEED), "--kind", "arxiv-rss"], env=cli_env)
    assert fetched.exit_code == 0 and "6 new" in fetched.output
    assert "warning: embedding failed (model file is gone); `digest embed` tries again" in fetched.output
    assert _count_embedded(cli_env["DIGEST_DATABASE_URL"]) == 0


def test_with_a_broker_the_fetch_queues_the_embedding_task(cli_env: dict[str, str]) -> None:
    require("Redis on 127.0.0.1:6379", port_open("127.0.0.1", 6379))
    queue = f"digest-test-{uuid.uuid4().hex[:10]}"
    env = {**cli_env, "DIGEST_BROKER_URL": REDIS_URL, "DIGEST_CELERY_QUEUE": queue}
    client = redis.Redis.from_url(REDIS_URL)
    try:
        fetched = CliRunner().invoke(app, ["fetch", "--file", str(FEED), "--kind", "arxiv-rss"], env=env)
        assert fetched.exit_code == 0 and "embedded" not in fetched.output, fetched.output
        messages = [json.loads(m) for m in client.lrange(queue, 0, -1)]
        assert [m["headers"]["task"] for m in messages] == ["digest.embed_papers"]
        assert _count_embedded(cli_env["DIGEST_DATABASE_URL"]) == 0  # a worker's job now
    finally:
        client.delete(queue)
