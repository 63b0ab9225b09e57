"""Alembic: the migrated schema is exactly the models', and data survives an upgrade."""

from __future__ import annotations

import json
from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import text
from sqlmodel import SQLModel, col, select

from digest.config import Settings
from digest.db import current_revision, init_db, make_engine, open_session
from digest.models import Delivery, DeliveryStatus, Paper, Subscriber, SubscriberStatus
from digest.pipeline import run_send
from digest.send import OutboxTransport
from digest.signup import subscriber_for
from digest.tokens import Purpose, email_tag
from tests.conftest import NOW, FreshDatabase

HEAD = "0009"  # the newest migration


def test_the_migrated_schema_is_the_models(fresh_database: FreshDatabase) -> None:
    engine = make_engine(fresh_database("migrated"))
    init_db(engine)
    assert current_revision(engine) == HEAD
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), SQLModel.metadata)
    engine.dispose()
    assert differences == []


def test_upgrading_a_database_with_data_from_the_previous_revision(
    fresh_database: FreshDatabase, settings: Settings
) -> None:
    url = fresh_database("old")
    engine = make_engine(url)
    init_db(engine, "0001")
    seen = (NOW - timedelta(hours=3)).replace(tzinfo=None) if url.startswith("sqlite") else NOW - timedelta(hours=3)
    joined = (NOW - timedelta(days=30)).replace(tzinfo=None) if url.startswith("sqlite") else NOW - timedelta(days=30)
    with engine.begin() as conn:  # rows as the 0001 code wrote them
        conn.execute(
            text(
                "INSERT INTO paper (id, title, authors, abstract, categories, published, abs_url, pdf_url, upvotes,"
                " sources, first_seen, updated_at) VALUES ('2611.00001', 'KV cache tricks', :authors, 'About caches.',"
                " :cats, :seen, 'https://arxiv.org/abs/2611.00001', 'https://arxiv.org/pdf/2611.00001', 7, :sources,"
                " :seen, :seen)"
            ),
            {
                "authors": json.dumps(["Ada"]),
                "cats": json.dumps(["cs.CL"]),
                "sources": json.dumps(["arxiv"]),
                "seen": seen,
            },
        )
        for address in ("ada@example.org", "grace@example.org"):
            conn.execute(
                text(
                    "INSERT INTO subscriber (email, status, topics, frequency, send_hour, timezone, weekly_day,"
                    " max_papers, created_at, confirmed_at) VALUES (:email, 'active', :topics, 'daily', 8, 'UTC', 0,"
                    " 25, :joined, :joined)"
                ),
                {"email": address, "topics": json.dumps(["cache"]), "joined": joined},
            )
    assert current_revision(engine) == "0001"
    init_db(engine)
    assert current_revision(engine) == HEAD
    with open_session(engine) as session:
        paper = session.get(Paper, "2611.00001")
        assert paper is not None and paper.authoritative is True and paper.upvotes == 7
        # 0005: no upvote history yet (the count stands from when it was first seen), not on HF.
        assert (paper.upvote_history, paper.on_hf, paper.needs_arxiv) == ([], False, False)
        # 0006: not embedded yet (matched by its words until the next embedding run).
        assert (paper.embedding, paper.embedding_model) == (None, None)
        subs = list(session.exec(select(Subscriber).order_by(col(Subscriber.id))))
        assert [s.status for s in subs] == [SubscriberStatus.ACTIVE] * 2 and subs[0].requested_at is None
        assert [s.trending for s in subs] == [None, None]  # topic readers stay topic readers
        # Every reader got a random handle of their own (what new links name).
        assert len({s.handle for s in subs}) == 2 and all(len(s.handle) == 16 for s in subs)
        upgraded = settings.model_copy(update={"database_url": url})
        # A link in an email sent before the upgrade (it named the row id and an address tag) still works.
        legacy = URLSafeTimedSerializer(upgraded.signing_keys, salt="paper-digest.unsubscribe").dumps(
            {"s": subs[1].id, "e": email_tag(subs[1].email)}
        )
        assert subscriber_for(session, upgraded, Purpose.UNSUBSCRIBE, legacy, now=NOW).email == "grace@example.org"
        report = run_send(session, upgraded, OutboxTransport(upgraded.outbox_dir), NOW)
        assert report.counts["sent"] == 2
        assert {d.status for d in session.exec(select(Delivery))} == {DeliveryStatus.SENT}
    engine.dispose()


def test_downgrade_then_upgrade_again(fresh_database: FreshDatabase) -> None:
    engine = make_engine(fresh_database("roundtrip"))
    init_db(engine)
    from alembic import command

    from digest.db import alembic_config

    with engine.connect() as conn:
        command.downgrade(alembic_config(conn), "0001")
        conn.commit()
    assert current_revision(engine) == "0001"
    init_db(engine)
    assert current_revision(engine) == HEAD
    engine.dispose()


def test_init_db_is_safe_to_run_twice(fresh_database: FreshDatabase) -> None:
    engine = make_engine(fresh_database("twice"))
    init_db(engine)
    init_db(engine)
    assert current_revision(engine) == HEAD
    engine.dispose()
