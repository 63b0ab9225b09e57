"""Feedback and a ranking per reader: votes from the email ("more / less like this"), each reader's
learned model, and the "recommended for you" section of a delivery.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vote",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("subscriber.id"), nullable=False),
        sa.Column("paper_id", sa.String(length=512), nullable=False),
        sa.Column("value", sa.Integer(), nullable=False),
        sa.Column("topic", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("subscriber_id", "paper_id", name="uq_vote_subscriber_paper"),
    )
    op.create_index("ix_vote_subscriber_id", "vote", ["subscriber_id"])
    op.create_table(
        "readermodel",
        sa.Column("subscriber_id", sa.Integer(), sa.ForeignKey("subscriber.id"), primary_key=True),
        sa.Column("embedding_model", sa.String(length=64), nullable=False),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("trained_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("recommended_count", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("recommended_count")
    op.drop_table("readermodel")
    op.drop_index("ix_vote_subscriber_id", table_name="vote")
    op.drop_table("vote")
