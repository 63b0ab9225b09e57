"""The pipeline's tables: papers, sources, subscribers, deliveries.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UTC = sa.DateTime(timezone=True)


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, length=16)


DELIVERY_STATUS = _enum(
    "deliverystatus", "pending", "sending", "sent", "retry", "failed", "unknown", "empty", "skipped"
)


def upgrade() -> None:
    op.create_table(
        "paper",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("authors", sa.JSON(), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=False),
        sa.Column("published", UTC, nullable=True),
        sa.Column("abs_url", sa.Text(), nullable=False),
        sa.Column("pdf_url", sa.Text(), nullable=True),
        sa.Column("upvotes", sa.Integer(), nullable=True),
        sa.Column("sources", sa.JSON(), nullable=False),
        sa.Column("first_seen", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_paper_first_seen", "paper", ["first_seen"])
    op.create_table(
        "sourcestate",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("etag", sa.String(), nullable=True),
        sa.Column("last_modified", sa.String(), nullable=True),
        sa.Column("last_attempt", UTC, nullable=True),
        sa.Column("last_success", UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("not_before", UTC, nullable=True),
        sa.Column("papers_last_run", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "subscriber",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("status", _enum("subscriberstatus", "pending", "active", "unsubscribed"), nullable=False),
        sa.Column("topics", sa.JSON(), nullable=False),
        sa.Column("frequency", _enum("frequency", "daily", "weekdays", "weekly"), nullable=False),
        sa.Column("send_hour", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("weekly_day", sa.Integer(), nullable=False),
        sa.Column("min_upvotes", sa.Integer(), nullable=True),
        sa.Column("max_papers", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("confirmed_at", UTC, nullable=True),
        sa.Column("unsubscribed_at", UTC, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_index("ix_subscriber_status", "subscriber", ["status"])
    op.create_table(
        "delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscriber_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("status", DELIVERY_STATUS, nullable=False),
        sa.Column("paper_ids", sa.JSON(), nullable=False),
        sa.Column("more_count", sa.Integer(), nullable=False),
        sa.Column("window_start", UTC, nullable=False),
        sa.Column("window_end", UTC, nullable=False),
        sa.Column("message_id", sa.String(length=300), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("due_at", UTC, nullable=True),
        sa.Column("claimed_at", UTC, nullable=True),
        sa.Column("sent_at", UTC, nullable=True),
        sa.ForeignKeyConstraint(["subscriber_id"], ["subscriber.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscriber_id", "period", name="uq_delivery_subscriber_period"),
    )
    op.create_index("ix_delivery_status_due", "delivery", ["status", "due_at"])
    op.create_index("ix_delivery_subscriber_id", "delivery", ["subscriber_id"])


def downgrade() -> None:
    op.drop_table("delivery")
    op.drop_table("subscriber")
    op.drop_table("sourcestate")
    op.drop_table("paper")
