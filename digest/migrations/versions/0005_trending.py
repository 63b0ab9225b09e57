"""Trending subscriptions and popularity that keeps counting: a reader's trending size, the trending
section of a delivery, each paper's upvote history, its Hugging Face page, and whether it still
waits for arXiv's categories and authors.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("trending", sa.Integer(), nullable=True))
    with op.batch_alter_table("delivery") as batch:
        batch.add_column(sa.Column("trending_count", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("paper") as batch:
        batch.add_column(sa.Column("upvote_history", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("on_hf", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("needs_arxiv", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.create_index("ix_paper_needs_arxiv", ["needs_arxiv"])


def downgrade() -> None:
    with op.batch_alter_table("paper") as batch:
        batch.drop_index("ix_paper_needs_arxiv")
        batch.drop_column("needs_arxiv")
        batch.drop_column("on_hf")
        batch.drop_column("upvote_history")
    with op.batch_alter_table("delivery") as batch:
        batch.drop_column("trending_count")
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_column("trending")
