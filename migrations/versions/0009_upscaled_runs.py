"""μP upscaling: a run may start from a narrower run's final state, widened (trainer/upscale.py).

Runs gain `noise`, the upscaling noise of a run whose role is 'upscaled' (its parent_run_id is the run
it widens; its schedule string names that run and the noise, so it stays a run of its own beside a
from-scratch run of the same shape). Sweeps gain `warm_start` ('upscale': a ladder built rung by rung,
each from the previous rung) and its `noise`.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("noise", sa.Float(), nullable=True))
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("warm_start", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("noise", sa.Float(), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM runs WHERE role = 'upscaled'")  # without their noise they are not runs
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("noise")
        batch_op.drop_column("warm_start")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_column("noise")
