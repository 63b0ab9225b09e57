"""The vectors of the texts readers describe their topics with (`like:"…"`): embedded once per
model and kept, so no send run embeds a reader's description again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "textvector",
        sa.Column("embedding_model", sa.String(length=64), primary_key=True),
        sa.Column("text_hash", sa.String(length=64), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("textvector")
