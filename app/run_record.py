"""Where each field of a trainer.RunResult is stored: declared once, here, from the dataclass itself.

Every RunResult field is a `Run` column of the same name, except the ones below, which say where they
go instead. A new result field is therefore stored (and served, by RunPublic, which reads the columns)
without touching the queue; tests/app/test_run_record.py fails until it has a column and a public field.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from trainer.result import RunResult

# Set when the run is queued and part of its identity (the unique proxy key); the result repeats them.
IDENTITY = ("width", "seed", "data_seed", "lr")
# Stored under another name: the outcome is the run's status, its reason the run's error, the steps
# done its progress.
RENAMED = {"status": "status", "reason": "error", "steps": "progress_step"}
CURVE = "loss_curve"  # one RunMetric row per point

RESULT_COLUMNS = tuple(
    f.name for f in fields(RunResult) if f.name not in IDENTITY and f.name not in RENAMED and f.name != CURVE
)


def result_values(result: dict[str, Any]) -> dict[str, Any]:
    """The Run columns a finished result writes, from RunResult.to_dict() (status and curve apart)."""
    values = {name: result.get(name) for name in RESULT_COLUMNS}
    values["error"] = result.get("reason")
    values["progress_step"] = result.get("steps", 0)
    values["progress_loss"] = result.get("final_train_loss")  # the last progress shown is the result's
    return values
