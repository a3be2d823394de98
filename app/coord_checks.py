"""Coordinate checks as a stored feature: computed on the first request (seconds on a CPU), then kept.

A check is keyed by everything it depends on (the LR, the sizes, the trainer's code), so a new tuned LR
or new trainer code computes a new one. One computation at a time per process: each is a burst of CPU
work that would only slow the others down.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app import tuning
from app.architectures import stored_spec
from app.models import Architecture, CoordCheckRecord
from trainer.coord_plan import default_depths, default_widths, largest_model
from trainer.result import code_version

_computing = threading.Lock()


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """The check's models are small: a second intra-op thread gains little, and next to busy workers
    it spins against them (measured here: 41 s with two threads beside two training processes, 4.9 s
    with one). The API process does no other torch work, so the process-wide setting is safe to flip.
    torch is imported here, on the first check, not when the API starts."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class TooLarge(Exception):
    """The check would build a model past the configured budget; the message names the fix."""


def request_of(session: Session, architecture: Architecture, max_params: int) -> dict[str, Any]:
    """What the check for this architecture runs: at the tuned η* when there is one, else the spec's LR.
    Raises TooLarge when its largest model exceeds `max_params` (it runs in the API process, on a CPU)."""
    spec = stored_spec(architecture)
    tuned = tuning.ladder_lr(tuning.latest(session, architecture.id, succeeded=True))
    widths = default_widths(spec)
    depths = default_depths(spec) if spec.parametrization.depth_alpha > 0 else []
    total, shape = largest_model(spec, widths, depths)
    if total > max_params:
        raise TooLarge(
            f"the coordinate check would build a {total / 1e6:.0f}M-parameter model ({shape}), past the "
            f"limit of {max_params / 1e6:.0f}M (MUPREDICT_COORD_CHECK_MAX_PARAMS): raise the limit, or "
            "check a spec with a smaller base width, depth or vocabulary"
        )
    return {
        "lr": tuned if tuned is not None else spec.training.lr,
        "lr_source": "tuned" if tuned is not None else "spec",
        "widths": widths,
        "depths": depths or None,
        "code_version": code_version(),
    }


def stored_or_computed(
    read: Session, write_sessions: sessionmaker[Session], architecture: Architecture, max_params: int
) -> tuple[CoordCheckRecord, dict[str, Any]]:
    """The stored check for the architecture's current LR, computing and storing it if there is none."""
    request = request_of(read, architecture, max_params)
    key = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    query = select(CoordCheckRecord).where(
        CoordCheckRecord.architecture_id == architecture.id, CoordCheckRecord.key == key
    )
    found = read.scalar(query)
    if found is not None:
        return found, request
    read.rollback()  # no transaction (nor, on SQLite, a snapshot) held through seconds of compute
    spec = stored_spec(architecture)
    with _computing, _one_torch_thread():
        from trainer.coord_check import coord_check  # torch: loaded on the first check

        width = coord_check(spec, sizes=request["widths"], lr=request["lr"])
        depth = (
            coord_check(spec, axis="depth", sizes=request["depths"], lr=request["lr"])
            if request["depths"]
            else None
        )
    result = {"width": width.to_dict(), "depth": depth.to_dict() if depth else None}
    with write_sessions() as session:
        record = CoordCheckRecord(architecture_id=architecture.id, key=key, result=result)
        session.add(record)
        try:
            session.commit()
        except IntegrityError:  # another request stored the same check first
            session.rollback()
            record = session.scalars(query).one()
        return record, request
