"""The batch order's seed, apart from the initialisation's: runs carry `data_seed` (part of their identity),
sweeps may share one.

Every existing run drew its batches from its own seed, so `data_seed` is filled in with `seed`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = ["architecture_id", "width", "depth", "seed", "steps", "lr"]


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_seed", sa.Integer(), nullable=True))
    op.execute("UPDATE runs SET data_seed = seed")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.alter_column("data_seed", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_constraint("uq_runs_proxy", type_="unique")
        batch_op.create_unique_constraint(
            "uq_runs_proxy", ["architecture_id", "width", "depth", "seed", "data_seed", "steps", "lr"]
        )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_seed", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Runs whose batch order was not their own seed's have no place in the old schema.
    op.execute("DELETE FROM runs WHERE data_seed <> seed")
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("data_seed")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_runs_proxy", type_="unique")
        batch_op.create_unique_constraint("uq_runs_proxy", OLD_KEY)
        batch_op.drop_column("data_seed")
