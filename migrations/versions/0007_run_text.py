"""Runs on a prepared corpus record its text fingerprint (the documents and their split, the same under
any tokenizer) and its validation split's UTF-8 bytes per token, so candidates trained on one text with
different tokenizers compare in bits per byte.

Runs stored before this revision, and runs on other corpora, have neither: the columns are null.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text_fingerprint", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("val_bytes_per_token", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("val_bytes_per_token")
        batch_op.drop_column("text_fingerprint")
