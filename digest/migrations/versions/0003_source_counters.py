"""Cumulative counters per source, for the Prometheus metrics.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sourcestate") as batch:
        batch.add_column(sa.Column("papers_total", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("failures_total", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sourcestate") as batch:
        batch.drop_column("failures_total")
        batch.drop_column("papers_total")
