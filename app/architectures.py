"""Registering architecture specs: one row per canonical spec, whatever its name or key order."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Architecture
from app.queue import insert_ignoring_duplicates
from trainer import ArchitectureSpec


def register(session: Session, spec: ArchitectureSpec) -> tuple[Architecture, bool]:
    """The architecture for `spec` and whether it was created now (False: an identical spec existed)."""
    spec_hash = spec.spec_hash()
    existing = session.scalar(select(Architecture).where(Architecture.spec_hash == spec_hash))
    if existing is not None:
        return existing, False
    inserted = insert_ignoring_duplicates(
        session,
        Architecture.__table__,
        [{"name": spec.name, "spec_hash": spec_hash, "spec": spec.model_dump(mode="json")}],
    )
    session.commit()
    row = session.scalar(select(Architecture).where(Architecture.spec_hash == spec_hash))
    assert row is not None
    return row, inserted == 1
