"""Reading what was sent: each delivery keeps the reader's topics and minimum of upvotes as they
were when it was composed (the archive and view-in-browser pages show it as sent, with the papers
the cap cut), an index for the archive's daily clean-up, and per reader the feed-only choice and
when their feed address was last reset.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("topics", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("min_upvotes", sa.Integer(), nullable=True))
        batch.create_index("ix_delivery_created_at", ["created_at"])
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("feed_only", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("feed_reset_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("feed_reset_at")
        batch.drop_column("feed_only")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_index("ix_delivery_created_at")
        batch.drop_column("min_upvotes")
        batch.drop_column("topics")
