"""An opaque, random handle per subscriber: what link tokens name instead of the row id.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.add_column(sa.Column("handle", sa.String(length=32), nullable=True))
    conn = op.get_bind()
    subscriber = sa.table("subscriber", sa.column("id", sa.Integer()), sa.column("handle", sa.String()))
    for (row_id,) in conn.execute(sa.select(subscriber.c.id)).all():
        conn.execute(subscriber.update().where(subscriber.c.id == row_id).values(handle=secrets.token_urlsafe(12)))
    with op.batch_alter_table("subscriber") as batch:
        batch.alter_column("handle", existing_type=sa.String(length=32), nullable=False)
        batch.create_unique_constraint("uq_subscriber_handle", ["handle"])


def downgrade() -> None:
    with op.batch_alter_table("subscriber") as batch:
        batch.drop_constraint("uq_subscriber_handle", type_="unique")
        batch.drop_column("handle")
