"""Depth in the ladder: a sweep may train several depths at each width, or one depth per width along a
declared aspect ratio (width / depth).

Sweeps gain `depths` (the grid's depths; null: the spec's n_layers alone, as every earlier sweep) and
`aspect_ratio` (null unless each width trains at depth = width / aspect_ratio). Runs already carry
their depth.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("depths", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("aspect_ratio", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("aspect_ratio")
        batch_op.drop_column("depths")
