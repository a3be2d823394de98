"""The schema history upgrades and downgrades cleanly on both backends and matches the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app import migrate
from app.db import make_engine
from app.models import Base

TABLES = {"architectures", "sweeps", "sweep_runs", "runs", "run_metrics", "fits"}


def test_upgrade_then_downgrade_round_trip(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    try:
        assert migrate.is_at_head(engine)
        assert TABLES <= set(inspect(engine).get_table_names())
        migrate.downgrade(engine, "base")
        assert migrate.current_revision(engine) is None
        assert not TABLES & set(inspect(engine).get_table_names())
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
    finally:
        engine.dispose()


def test_models_match_migrations(fresh_db_url: str) -> None:
    """Autogenerate finds nothing to add: every model change comes with its migration."""
    engine = make_engine(fresh_db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_claim_indexes_exist(fresh_db_url: str) -> None:
    engine = make_engine(fresh_db_url)
    try:
        names = {ix["name"] for ix in inspect(engine).get_indexes("runs")}
        assert {"ix_runs_claim", "ix_runs_lease"} <= names
    finally:
        engine.dispose()
