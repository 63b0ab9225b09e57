"""Web sign-up and delivery hardening: confirmation stamps, notices, suppression, source validators.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=16)


def upgrade() -> None:
    # Statuses are plain VARCHARs (no database enum type), so `paused` and `suppressed` need no DDL.
    with op.batch_alter_table("paper") as batch:
        batch.add_column(sa.Column("authoritative", sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table("sourcestate") as batch:
        batch.add_column(sa.Column("validators_url", sa.Text(), nullable=True))
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("requested_at", UTC, nullable=True))
    op.create_table(
        "notice",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("kind", _enum("noticekind", "confirm", "already"), nullable=False),
        sa.Column(
            "status",
            _enum("deliverystatus", "pending", "sending", "sent", "retry", "failed", "unknown", "empty", "skipped"),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("due_at", UTC, nullable=True),
        sa.Column("claimed_at", UTC, nullable=True),
        sa.Column("sent_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_notice_created_at", "notice", ["created_at"])
    op.create_index("ix_notice_status_due", "notice", ["status", "due_at"])
    op.create_index("ix_notice_subscriber_id", "notice", ["subscriber_id"])
    op.create_table(
        "suppression",
        sa.Column("address_hash", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("address_hash"),
    )
    op.create_index("ix_suppression_created_at", "suppression", ["created_at"])


def downgrade() -> None:
    op.drop_table("suppression")
    op.drop_table("notice")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("requested_at")
    with op.batch_alter_table("sourcestate") as batch:
        batch.drop_column("validators_url")
    with op.batch_alter_table("paper") as batch:
        batch.drop_column("authoritative")
