"""LR tuning: every run records its LR and depth; sweeps record the LR they train at; tunings and
coordinate checks.

Existing runs and sweeps trained at their spec's LR and depth, so both are filled in from the spec.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DEFAULT_LR = 0.01  # trainer.TrainingSpec's default, for a stored spec that leaves training.lr out
DEFAULT_DEPTH = 2  # trainer.ArchitectureSpec's default n_layers


RUNS = sa.table(
    "runs",
    sa.column("architecture_id", sa.Integer),
    sa.column("lr", sa.Float),
    sa.column("depth", sa.Integer),
)


def _spec_recipes() -> list[tuple[int, float, int]]:
    """(architecture id, its spec's LR, its spec's depth) for every architecture."""
    architectures = sa.table("architectures", sa.column("id", sa.Integer), sa.column("spec", sa.JSON))
    rows = op.get_bind().execute(sa.select(architectures.c.id, architectures.c.spec)).all()
    return [
        (
            arch_id,
            float((spec.get("training") or {}).get("lr", DEFAULT_LR)),
            int(spec.get("n_layers", DEFAULT_DEPTH)),
        )
        for arch_id, spec in rows
    ]


def _backfill() -> None:
    """Copy each architecture's LR and depth into its runs and sweeps (what they trained at)."""
    bind = op.get_bind()
    sweeps = sa.table("sweeps", sa.column("architecture_id", sa.Integer), sa.column("lr", sa.Float))
    for arch_id, lr, depth in _spec_recipes():
        bind.execute(sa.update(RUNS).where(RUNS.c.architecture_id == arch_id).values(lr=lr, depth=depth))
        bind.execute(sa.update(sweeps).where(sweeps.c.architecture_id == arch_id).values(lr=lr))


def upgrade() -> None:
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("depth", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("lr", sa.Float(), nullable=True))
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lr", sa.Float(), nullable=True))
        batch_op.add_column(
            sa.Column("lr_source", sa.String(length=16), nullable=False, server_default="spec")
        )
    _backfill()
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.alter_column("depth", existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column("lr", existing_type=sa.Float(), nullable=False)
        batch_op.drop_constraint("uq_runs_proxy", type_="unique")
        batch_op.create_unique_constraint(
            "uq_runs_proxy", ["architecture_id", "width", "depth", "seed", "steps", "lr"]
        )
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.alter_column("lr", existing_type=sa.Float(), nullable=False)
        batch_op.alter_column("lr_source", existing_type=sa.String(length=16), server_default=None)

    op.create_table(
        "tunings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("architecture_id", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "queued", "running", "succeeded", "failed", name="tuning_status", native_enum=False, length=16
            ),
            nullable=False,
        ),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["architecture_id"],
            ["architectures.id"],
            name=op.f("fk_tunings_architecture_id_architectures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tunings")),
        sa.UniqueConstraint("architecture_id", "params_hash", name="uq_tunings_params"),
    )
    with op.batch_alter_table("tunings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tunings_architecture_id"), ["architecture_id"], unique=False)

    op.create_table(
        "tuning_runs",
        sa.Column("tuning_id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("lr_index", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.id"], name=op.f("fk_tuning_runs_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tuning_id"], ["tunings.id"], name=op.f("fk_tuning_runs_tuning_id_tunings"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tuning_id", "run_id", name=op.f("pk_tuning_runs")),
    )
    with op.batch_alter_table("tuning_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_tuning_runs_run_id"), ["run_id"], unique=False)

    op.create_table(
        "coord_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("architecture_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["architecture_id"],
            ["architectures.id"],
            name=op.f("fk_coord_checks_architecture_id_architectures"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coord_checks")),
        sa.UniqueConstraint("architecture_id", "key", name="uq_coord_checks_key"),
    )
    with op.batch_alter_table("coord_checks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_coord_checks_architecture_id"), ["architecture_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("coord_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_coord_checks_architecture_id"))
    op.drop_table("coord_checks")
    with op.batch_alter_table("tuning_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tuning_runs_run_id"))
    op.drop_table("tuning_runs")
    with op.batch_alter_table("tunings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tunings_architecture_id"))
    op.drop_table("tunings")
    # Runs at other LRs or depths than their spec's (tuning runs) have no place in the old schema.
    for arch_id, lr, depth in _spec_recipes():
        stale = sa.or_(RUNS.c.lr != lr, RUNS.c.depth != depth)
        op.get_bind().execute(sa.delete(RUNS).where(RUNS.c.architecture_id == arch_id, stale))
    with op.batch_alter_table("sweeps", schema=None) as batch_op:
        batch_op.drop_column("lr_source")
        batch_op.drop_column("lr")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_constraint("uq_runs_proxy", type_="unique")
        batch_op.create_unique_constraint("uq_runs_proxy", ["architecture_id", "width", "seed", "steps"])
        batch_op.drop_column("lr")
        batch_op.drop_column("depth")
