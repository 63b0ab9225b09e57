"""Semantic topics end to end with the real model: the sample arXiv listing ingested, every paper
embedded by all-MiniLM-L6-v2 (int8 ONNX), `like:` topics matched, digests received over SMTP."""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage

import numpy as np
import pytest
from sqlmodel import Session, select

from digest.config import Settings, SourceKind
from digest.demo import SAMPLES
from digest.embed import embed_missing, load_embedder
from digest.index import semantics_for, text_hash, text_vectors
from digest.ingest import ingest_bytes
from digest.models import Paper, TextVector
from digest.pipeline import run_send
from digest.semantic import like_texts
from digest.send import make_transport
from tests.conftest import NOW
from tests.factories import subscriber
from tests.smtpserver import SmtpServer, smtp_server  # noqa: F401  (the fixture)

JOINED = NOW - timedelta(days=30)


def _text(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def _cards(text: str) -> list[tuple[str, str]]:
    """(title, the card's 'Matched:' line) per paper of a digest's text part."""
    return re.findall(r"^\d+\. (.+)\n(?:.*\n)*?.*Matched: (.+)$", text, re.M)


def test_like_topics_find_papers_by_meaning_and_say_why(
    session: Session, settings: Settings, smtp_server: SmtpServer
) -> None:
    listing = (SAMPLES / "arxiv-listing.rss").read_bytes()
    ingest_bytes(session, listing, SourceKind.ARXIV_RSS, "arxiv", NOW - timedelta(hours=3))
    embedder = load_embedder("minilm-int8")
    assert embedder is not None
    stored = len(session.exec(select(Paper)).all())
    assert stored > 30 and embed_missing(session, embedder) == stored
    example = session.exec(select(Paper).where(Paper.title == "xKV: Cross-Layer SVD for KV-Cache Compression")).one()

    # Described in other words than the papers': "key-value cache", not "KV cache".
    subscriber(
        session, "meaning@example.org", ['like:"compressing the key-value cache during LLM inference"'], joined=JOINED
    )
    subscriber(session, "example@example.org", [f"like:{example.id} -quantization"], joined=JOINED)
    settings = settings.model_copy(update={"smtp_url": smtp_server.url, "smtp_timeout": 5.0})
    run_send(session, settings, make_transport(settings), NOW)

    (meaning,) = [m.message for m in smtp_server.to("meaning@example.org")]
    cards = _cards(_text(meaning))
    assert cards, "the semantic topic found nothing"
    assert all(why.startswith('close to "compressing the key-value') for _title, why in cards)
    assert re.search(r"kv|cache", cards[0][0], re.I), f"not a KV cache paper first: {cards[0][0]}"

    (similar,) = [m.message for m in smtp_server.to("example@example.org")]
    cards = _cards(_text(similar))
    titles = [title for title, _why in cards]
    assert example.title not in titles  # the example itself is the reader's own, never "like" itself
    assert not any("Quantization" in title for title in titles)  # -quantization still excludes
    assert cards and all(why == f"close to your example {example.title}" for _t, why in cards), cards
    assert any(re.search(r"kv|cache", title, re.I) for title in titles[:3])
    kept = session.exec(select(TextVector)).all()  # the send run kept the description's vector
    assert [r.text_hash for r in kept] == [text_hash("compressing the key-value cache during LLM inference")]


def test_a_topic_text_is_embedded_once_and_read_back_by_later_runs(
    session: Session, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `like:"…"` text's vector is stored the first time a run needs it; a later run (a new
    process: a new Semantics) reads it back and never loads the model for it."""
    engine = session.get_bind().engine
    first = semantics_for(settings, engine)
    assert first is not None
    first.prefetch(like_texts(['like:"sparse attention for long videos" -survey', 'like:"protein folding"']))
    rows = session.exec(select(TextVector)).all()
    assert sorted(r.text_hash for r in rows) == sorted(
        text_hash(t) for t in ("sparse attention for long videos", "protein folding")
    )
    assert {r.embedding_model for r in rows} == {"minilm-int8"} and all(len(r.vector) == 768 for r in rows)

    def no_model(model: str) -> None:
        raise AssertionError(f"the model {model} was asked for a stored text")

    monkeypatch.setattr("digest.index.load_embedder", no_model)
    later = semantics_for(settings, engine)
    assert later is not None
    vector = later.text_vector("protein folding")
    assert np.allclose(vector, first.text_vector("protein folding"), atol=1e-3)
    again = text_vectors(engine, "minilm-int8", ["protein folding", "sparse attention for long videos"])
    assert set(again) == {"protein folding", "sparse attention for long videos"}
    assert len(session.exec(select(TextVector)).all()) == 2  # nothing stored twice
