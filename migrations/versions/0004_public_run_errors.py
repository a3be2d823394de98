"""Stored run errors made public-safe: older code stored tracebacks and server paths, which anyone could
read at GET /v1/runs/{id} (issue 14, point 4). Each stored error is rewritten once by the rule the
worker now applies when it stores one (app.run_errors.public_error): one line, the exception without
its traceback, no absolute path but those under the run's own dataset source.

The old text is not kept anywhere, so the downgrade leaves the rewritten errors as they are.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.run_errors import public_error, source_of

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RUNS = sa.table(
    "runs", sa.column("id", sa.Integer), sa.column("architecture_id", sa.Integer), sa.column("error", sa.Text)
)
ARCHITECTURES = sa.table("architectures", sa.column("id", sa.Integer), sa.column("spec", sa.JSON))


def upgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(RUNS.c.id, RUNS.c.error, ARCHITECTURES.c.spec)
        .join(ARCHITECTURES, ARCHITECTURES.c.id == RUNS.c.architecture_id)
        .where(RUNS.c.error.is_not(None))
    ).all()
    for run_id, error, spec in rows:
        public = public_error(error, source_of(spec))
        if public != error:
            bind.execute(sa.update(RUNS).where(RUNS.c.id == run_id).values(error=public))


def downgrade() -> None:
    pass
