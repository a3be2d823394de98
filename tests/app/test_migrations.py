"""The schema history upgrades and downgrades cleanly on both backends and matches the models."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from app import migrate
from app.db import make_engine
from app.models import Base

NOW = datetime(2026, 1, 1, tzinfo=UTC)
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


def test_errors_stored_by_older_code_are_made_public_safe(fresh_db_url: str) -> None:
    """Migration 0004: a traceback with server paths, as older workers stored it, keeps only its last
    line, with paths outside the run's own source replaced; errors already safe stay as they were."""
    engine = make_engine(fresh_db_url)
    traceback = (
        "Traceback (most recent call last):\n"
        '  File "/srv/mupredict/app/worker.py", line 201, in _train\n'
        "    result = trainer.train(spec)\n"
        "FileNotFoundError: [Errno 2] No such file: '/etc/secret/corpus.txt' (under /data/mine)\n"
    )
    safe = "CorpusError: dataset source '/data/mine/c.txt' holds 12 tokens, fewer than one batch"
    try:
        migrate.downgrade(engine, "0003")
        with engine.begin() as conn:
            arch = conn.execute(
                text(
                    "INSERT INTO architectures (name, spec_hash, spec, created_at) "
                    "VALUES ('a', :h, :spec, :t) RETURNING id"
                ),
                {"h": "0" * 64, "spec": json.dumps({"dataset": {"source": "/data/mine"}}), "t": NOW},
            ).scalar_one()
            for seed, error in enumerate([traceback, safe, None]):
                conn.execute(
                    text(
                        "INSERT INTO runs (architecture_id, width, depth, seed, data_seed, steps, lr, status,"
                        " attempts, created_at, updated_at, progress_step, progress_total, error) VALUES "
                        "(:a, 32, 2, :s, :s, 10, 0.001, 'failed', 1, :t, :t, 0, 0, :e)"
                    ),
                    {"a": arch, "s": seed, "t": NOW, "e": error},
                )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            stored = conn.execute(text("SELECT error FROM runs ORDER BY seed")).scalars().all()
        assert stored == [
            "FileNotFoundError: [Errno 2] No such file: '<server path>' (under /data/mine)",
            safe,
            None,
        ]
    finally:
        engine.dispose()
