"""Request and response models of the LR tuning and the coordinate check (app/routes/tuning.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.schemas import RunCounts
from app.tables import Tabular
from trainer.spec import MAX_STEPS, StrictInteger, StrictNumber


class TuningCreate(BaseModel):
    """An LR sweep at the base shape plus the transfer check at larger widths (and depths)."""

    model_config = ConfigDict(extra="forbid")

    widths: list[StrictInteger] | None = Field(
        None,
        max_length=16,
        description="Widths of the transfer check; the base width is always swept. Default ×4 and ×8 "
        "the base width; [] tunes at the base width only.",
    )
    depths: list[StrictInteger] | None = Field(
        None,
        max_length=16,
        description="Depths of the depth-transfer check, at the base width. Default ×4 and ×8 the spec's "
        "depth when parametrization.depth_alpha > 0, else none.",
    )
    token_budgets: list[StrictInteger] | None = Field(
        None,
        max_length=8,
        description="Token horizons of the horizon check, at the base width and depth: each a whole run of "
        "that many training tokens (multiples of batch_tokens); the tuning's own steps × batch_tokens is "
        "always one. η* is found at each, and when it drifts with the horizon (the optimal LR falls as "
        "training gets longer: Bjorck et al. 2025) new sweeps train at η* moved along the fitted rule "
        "η* ∝ D^slope. Default: none (no horizon check).",
    )
    seeds: list[StrictInteger] = Field(
        [0, 1], min_length=2, max_length=16, description="Seeds per grid point (≥ 2)."
    )
    steps: StrictInteger | None = Field(
        None, ge=1, le=MAX_STEPS, description="Steps per run; default: the spec's."
    )
    lr: StrictNumber | None = Field(
        None, gt=0, le=10, description="Centre of the LR grid; default: the spec's lr."
    )
    grid_factor: StrictNumber = Field(2**0.5, description="Ratio between neighbouring LRs of the grid.")
    grid_points: StrictInteger = Field(5, description="Points of the first grid (≥ 3 to bracket a minimum).")
    max_extensions: StrictInteger = Field(4, description="Rounds of grid extension before the tuning fails.")
    level: StrictNumber = Field(
        0.9, gt=0, lt=1, description="Coverage of the intervals of η* and of the slopes."
    )

    @model_validator(mode="after")
    def _can_bracket(self) -> TuningCreate:
        from trainer.tuning import check_grid

        if any(s < 0 or s >= 2**31 for s in self.seeds):
            raise ValueError("seeds must lie in [0, 2**31)")
        check_grid(self.grid_points, self.grid_factor, self.seeds, self.max_extensions)
        return self


class LrPoint(BaseModel):
    lr: float
    loss_mean: float | None
    loss_sd: float | None
    n: int = Field(description="Seeds with a validation loss at this LR.")
    diverged: int
    failed: int


class LrCurve(BaseModel):
    width: int
    depth: int
    steps: int = Field(description="Steps of each run of the curve (its token horizon / batch_tokens).")
    tokens: int = Field(description="Training tokens of each run of the curve: its horizon D.")
    state: str = Field(description="'extend' (more grid points queued), 'bracketed' or 'failed'.")
    reason: str | None
    extensions: int
    lr_star: float | None
    lower: float | None
    upper: float | None
    curvature: float | None = Field(description="d²loss / d(log2 lr)² at the minimum: the basin's sharpness.")
    method: str | None = Field(description="'quadratic' (fit near the minimum) or 'grid' (best point).")
    note: str | None
    curve: list[LrPoint]


class TransferPublic(BaseModel):
    axis: str
    sizes: list[int]
    lr_stars: list[float]
    slope: float | None = Field(description="Slope of log2 η* against log2 width (or depth).")
    lower: float | None
    upper: float | None
    spread_log2: float
    curvature_ratio: float | None = Field(description="Curvature at the largest size / at the base.")
    verdict: str = Field(description="'transfers', 'drifts' or 'inconclusive'.")
    reason: str


class HorizonRulePublic(BaseModel):
    """η* at another horizon: lr_star · (steps / base_steps)^exponent (trainer.tuning_result.HorizonRule)."""

    base_steps: int
    lr_star: float = Field(description="η* at base_steps: the rule's anchor.")
    exponent: float = Field(description="Slope of log2 η* against log2 steps (or tokens): −β of LR* ∝ D^−β.")
    lower: float
    upper: float
    applied: bool = Field(description="Whether new sweeps train at the rule's LR: only when η* drifts.")
    horizons: list[int] = Field(description="The steps the exponent was fitted over.")


class TuningPublic(Tabular):
    _table = "per_width"
    id: int
    architecture_id: int
    status: str = Field(description="queued, running, succeeded or failed.")
    params: dict[str, Any] = Field(description="The resolved request (centre LR, shapes, seeds, grid).")
    level: float
    lr_star: float | None = Field(description="η* at the base shape.")
    lower: float | None
    upper: float | None
    ladder_lr: float | None = Field(description="η* to 3 significant digits: what a new sweep trains at.")
    per_width: list[LrCurve] = Field(description="The base shape, then the larger widths.")
    per_depth: list[LrCurve] = Field(description="The base shape, then the larger depths (if any).")
    per_horizon: list[LrCurve] = Field(
        description="The base shape at each horizon of the horizon check, shortest first (if any)."
    )
    transfer: dict[str, TransferPublic] = Field(
        description="'width', 'depth' and 'horizon', once checked (the horizon's sizes are steps)."
    )
    horizon_rule: HorizonRulePublic | None = Field(
        description="How η* moves with the horizon, once the horizon check settled."
    )
    runs: RunCounts
    error: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


class CoordinatePublic(BaseModel):
    name: str
    sizes: list[float] = Field(description="Mean |x| after the last step, per width (or depth).")
    deltas: list[float] = Field(description="Mean |x_t − x_0|, per width (or depth).")
    slope: float
    delta_slope: float


class CoordCheckAxis(BaseModel):
    axis: str
    sizes: list[int]
    lr: float
    steps: int
    seeds: list[int]
    coordinates: list[CoordinatePublic]
    max_abs_slope: float
    threshold: float
    verdict: str = Field(description="'passes' (every |slope| ≤ threshold) or 'fails'.")
    worst: str


class CoordCheckPublic(BaseModel):
    architecture_id: int
    lr: float
    lr_source: str = Field(description="'tuned' (η*) or 'spec'.")
    verdict: str = Field(description="'passes' when every axis passes.")
    width: CoordCheckAxis
    depth: CoordCheckAxis | None = Field(description="Along depth, when parametrization.depth_alpha > 0.")
    created_at: datetime
