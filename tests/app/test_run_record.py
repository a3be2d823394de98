"""A run's result is declared once (trainer.RunResult): every field has a column, a public field, and a
write in queue.complete, with no list kept by hand anywhere else (issue 15 point 3)."""

from __future__ import annotations

from dataclasses import fields

from sqlalchemy.orm import Session

from app import queue
from app.models import Run
from app.public import run_public
from app.run_record import CURVE, IDENTITY, RENAMED, RESULT_COLUMNS
from app.schemas import RunPublic
from tests.app.test_queue import RECIPE, RESULT, _architecture
from trainer.result import RunResult


def test_every_result_field_has_one_place() -> None:
    names = [f.name for f in fields(RunResult)]
    places = [*RESULT_COLUMNS, *IDENTITY, *RENAMED, CURVE]
    assert sorted(places) == sorted(names)  # each field once, none forgotten, none invented
    columns = set(Run.__table__.columns.keys())
    assert set(RESULT_COLUMNS) | set(IDENTITY) | set(RENAMED.values()) <= columns


def test_every_stored_field_is_public() -> None:
    public = set(RunPublic.model_fields)
    assert set(RESULT_COLUMNS) | set(IDENTITY) | set(RENAMED.values()) | {CURVE} <= public


def test_a_stored_result_reads_back_field_for_field(db_session: Session) -> None:
    arch = _architecture(db_session)
    queue.enqueue_sweep(db_session, arch, [32], [0], steps=10, **RECIPE)
    db_session.commit()
    claimed = queue.claim(db_session, "w", lease_seconds=30)
    assert claimed is not None
    assert queue.complete(db_session, claimed.id, "w", RESULT)
    db_session.expire_all()
    public = run_public(db_session.get(Run, claimed.id)).model_dump()
    for name in RESULT_COLUMNS:
        assert public[name] == RESULT[name], name
    assert public["error"] == RESULT["reason"] and public["progress_step"] == RESULT["steps"]
    assert [(p["step"], p["train_loss"]) for p in public["loss_curve"]] == [tuple(p) for p in RESULT[CURVE]]
