"""Paper embeddings: each paper's title-and-abstract vector and the model that made it (none yet:
papers already stored are embedded by the next `digest embed` or embedding task).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("paper") as batch:
        batch.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("embedding_model", sa.String(length=64), nullable=True))
        batch.create_index("ix_paper_embedding_model", ["embedding_model"])


def downgrade() -> None:
    with op.batch_alter_table("paper") as batch:
        batch.drop_index("ix_paper_embedding_model")
        batch.drop_column("embedding_model")
        batch.drop_column("embedding")
