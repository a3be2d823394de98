"""Registering architecture specs: one row per canonical spec, whatever its name or key order."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from sqlalchemy import CursorResult, select
from sqlalchemy import delete as sql_delete
from sqlalchemy.orm import Session

from app.models import Architecture
from app.queue import insert_ignoring_duplicates
from trainer import ArchitectureSpec


class StoredSpecInvalid(Exception):
    """A stored spec that today's ArchitectureSpec rejects (written by older code, or edited by hand).

    The row stays listed (flagged, with this message); what needs the spec answers 409 with it."""

    def __init__(self, architecture_id: int, errors: str) -> None:
        self.architecture_id = architecture_id
        super().__init__(
            f"the stored spec of architecture {architecture_id} no longer validates ({errors}): register "
            "a corrected spec with POST /v1/architectures and use that architecture instead"
        )


def describe(exc: ValidationError) -> str:
    """A validation error in one line: `field.path: message` per error."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'spec'}: {e['msg']}" for e in exc.errors())


def stored_spec(architecture: Architecture) -> ArchitectureSpec:
    """The architecture's spec, or StoredSpecInvalid (HTTP 409) when it no longer validates."""
    try:
        return ArchitectureSpec.model_validate(architecture.spec)
    except ValidationError as exc:
        raise StoredSpecInvalid(architecture.id, describe(exc)) from None


def delete(session: Session, architecture_id: int) -> bool:
    """Delete the architecture with everything made for it: sweeps, runs with their curves, fits,
    tunings, coordinate checks (the foreign keys cascade). A worker training one of its runs loses its
    lease at its next heartbeat and drops the run. False if there was no such architecture; commits."""
    deleted: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        sql_delete(Architecture).where(Architecture.id == architecture_id)
    )
    session.commit()
    return bool(deleted.rowcount)


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
