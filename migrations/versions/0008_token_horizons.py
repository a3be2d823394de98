"""Token horizons: a sweep may name token budgets, trained as one trunk per (width, seed) and a
cooldown branch per budget that resumes from the trunk's checkpoint (trainer/horizon.py).

Runs gain their role (run, trunk or branch), their parent trunk, the warmup, stop and resume steps,
and a `schedule` string that joins the unique proxy key, so that a trunk, a branch and a whole run of
one length stay three runs. Existing runs are whole runs: role 'run', schedule ''.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_KEY = ["architecture_id", "width", "depth", "seed", "data_seed", "steps", "lr"]


def upgrade() -> None:
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_budgets", sa.JSON(), nullable=True))
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("role", sa.String(length=16), nullable=False, server_default="run"))
        batch_op.add_column(sa.Column("parent_run_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("warmup_steps", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("stop_step", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("resume_step", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("schedule", sa.String(length=64), nullable=False, server_default=""))
        batch_op.create_foreign_key(
            "fk_runs_parent_run_id_runs", "runs", ["parent_run_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_index("ix_runs_parent_run_id", ["parent_run_id"])
        batch_op.drop_constraint("uq_runs_proxy", type_="unique")
        batch_op.create_unique_constraint("uq_runs_proxy", [*OLD_KEY, "schedule"])


def downgrade() -> None:
    op.execute("DELETE FROM runs WHERE role <> 'run'")  # the old key cannot hold trunks and branches
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_runs_proxy", type_="unique")
        batch_op.create_unique_constraint("uq_runs_proxy", OLD_KEY)
        batch_op.drop_index("ix_runs_parent_run_id")
        batch_op.drop_constraint("fk_runs_parent_run_id_runs", type_="foreignkey")
        for column in ("schedule", "resume_step", "stop_step", "warmup_steps", "parent_run_id", "role"):
            batch_op.drop_column(column)
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("token_budgets")
