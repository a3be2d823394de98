"""Every table of the service, in one file (SQLAlchemy 2 declarative, typed)."""

from __future__ import annotations

import enum
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names, so Alembic migrations can drop and alter them on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware timestamps on every backend: SQLite keeps no offset, so read values are tagged UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware datetime (utcnow())")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON}


class RunStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    diverged = "diverged"
    cancelled = "cancelled"


FINISHED = (RunStatus.succeeded, RunStatus.failed, RunStatus.diverged, RunStatus.cancelled)


class RunRole(str, enum.Enum):
    """What a run is for. A token-horizon sweep trains one trunk per (width, seed), stopped where its
    longest budget's decay starts and checkpointed where each budget's does, and a branch per budget
    that resumes from the trunk's checkpoint and cools down (trainer/horizon.py)."""

    run = "run"  # a whole run on its own
    trunk = "trunk"
    branch = "branch"
    # A whole run that starts from its parent run's final state, widened (trainer/upscale.py): a
    # different recipe from a run trained from scratch, so never pooled with those.
    upscaled = "upscaled"


class Architecture(Base):
    __tablename__ = "architectures"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # sha256 of the canonical spec JSON: the same spec posted twice is one architecture.
    spec_hash: Mapped[str] = mapped_column(String(64), unique=True)
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    runs: Mapped[list[Run]] = relationship(back_populates="architecture")


class Sweep(Base):
    __tablename__ = "sweeps"

    id: Mapped[int] = mapped_column(primary_key=True)
    architecture_id: Mapped[int] = mapped_column(
        ForeignKey("architectures.id", ondelete="CASCADE"), index=True
    )
    widths: Mapped[list[int]] = mapped_column(JSON)
    seeds: Mapped[list[int]] = mapped_column(JSON)
    steps: Mapped[int]
    lr: Mapped[float] = mapped_column(Float)  # the base LR every run of the sweep trains at
    lr_source: Mapped[str] = mapped_column(String(16))  # "tuned" (η*), "tuned-horizon", "pinned" or "spec"
    data_seed: Mapped[int | None]  # one batch order for every run, or None: each run's order is its seed's
    # A token-horizon sweep's budgets (training tokens per run, increasing), or None: runs of `steps`.
    token_budgets: Mapped[list[int] | None] = mapped_column(JSON)
    # "upscale": each width after the smallest starts from the previous width's run, widened, with
    # `noise` (trainer/upscale.py); null: every run from scratch.
    warm_start: Mapped[str | None] = mapped_column(String(16))
    noise: Mapped[float | None] = mapped_column(Float)
    # A ladder over depth: every width at each of `depths`, or each width at depth = width /
    # `aspect_ratio`; both null: every width at the spec's n_layers.
    depths: Mapped[list[int] | None] = mapped_column(JSON)
    aspect_ratio: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    runs: Mapped[list[SweepRun]] = relationship(cascade="all, delete-orphan")


class SweepRun(Base):
    """A sweep names runs; a run may belong to several sweeps (the same proxy is trained once)."""

    __tablename__ = "sweep_runs"

    sweep_id: Mapped[int] = mapped_column(ForeignKey("sweeps.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)

    run: Mapped[Run] = relationship()


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        # Idempotent enqueue: one run per (architecture, shape, seed, budget, LR); a sweep and a tuning
        # that ask for the same proxy share it.
        UniqueConstraint(
            "architecture_id",
            "width",
            "depth",
            "seed",
            "data_seed",
            "steps",
            "lr",
            "schedule",
            name="uq_runs_proxy",
        ),
        # The claim query scans queued runs oldest first, and the reaper scans expired leases.
        Index("ix_runs_claim", "status", "created_at"),
        Index("ix_runs_lease", "status", "lease_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    architecture_id: Mapped[int] = mapped_column(
        ForeignKey("architectures.id", ondelete="CASCADE"), index=True
    )
    width: Mapped[int]
    depth: Mapped[int]  # blocks: the spec's n_layers, or another depth for a depth-transfer check
    seed: Mapped[int]  # the initialisation's seed
    data_seed: Mapped[int]  # the batch order's seed: the init seed unless the sweep shared one
    steps: Mapped[int]
    lr: Mapped[float] = mapped_column(Float)  # the base Adam LR (μP scales it per parameter group)
    # Token horizons (RunRole): a trunk stops at stop_step of its `steps`; a branch resumes from its
    # parent trunk's checkpoint at resume_step; both warm up over warmup_steps (null: the spec's fraction).
    role: Mapped[RunRole] = mapped_column(
        Enum(RunRole, name="run_role", native_enum=False, length=16), default=RunRole.run
    )
    parent_run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    warmup_steps: Mapped[int | None]
    stop_step: Mapped[int | None]
    resume_step: Mapped[int | None]
    noise: Mapped[float | None] = mapped_column(Float)  # an upscaled run's: × a fresh μP init on the copies
    # The schedule's part of a run's identity (app.queue.RunKey.schedule): "" for a whole run, else the
    # role and its steps, so a trunk, a branch and a whole run of one length are three runs.
    schedule: Mapped[str] = mapped_column(String(64), default="")
    status: Mapped[RunStatus] = mapped_column(
        Enum(RunStatus, name="run_status", native_enum=False, length=16), default=RunStatus.queued
    )
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Lease: only the holder may write progress or the result; an expired lease is requeued.
    lease_owner: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None]
    # A run requeued after a failed attempt waits until then (exponential backoff, app.queue.backoff).
    not_before: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    progress_step: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    progress_loss: Mapped[float | None] = mapped_column(Float)

    # Result.
    final_train_loss: Mapped[float | None] = mapped_column(Float)
    val_loss: Mapped[float | None] = mapped_column(Float)
    n_params: Mapped[int | None] = mapped_column(BigInteger)
    n_params_non_embedding: Mapped[int | None] = mapped_column(BigInteger)
    tokens: Mapped[int | None] = mapped_column(BigInteger)
    flops: Mapped[float | None] = mapped_column(Float)
    wall_seconds: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    mfu: Mapped[float | None] = mapped_column(Float)
    device: Mapped[str | None] = mapped_column(String(100))
    corpus_fingerprint: Mapped[str | None] = mapped_column(String(64))
    tokenizer: Mapped[str | None] = mapped_column(String(300))  # what produced the corpus's token ids
    # A prepared corpus's text (any tokenizer) and its validation bytes per token: for bits per byte.
    text_fingerprint: Mapped[str | None] = mapped_column(String(64))
    val_bytes_per_token: Mapped[float | None] = mapped_column(Float)
    code_version: Mapped[str | None] = mapped_column(String(100))
    error: Mapped[str | None] = mapped_column(Text)

    architecture: Mapped[Architecture] = relationship(back_populates="runs")
    metrics: Mapped[list[RunMetric]] = relationship(
        cascade="all, delete-orphan", order_by="RunMetric.step", passive_deletes=True
    )


class RunMetric(Base):
    """One point of a run's training-loss curve."""

    __tablename__ = "run_metrics"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(primary_key=True)
    train_loss: Mapped[float] = mapped_column(Float)


class Fit(Base):
    """A scaling-law fit cached per architecture and per the exact set of results it was fitted on."""

    __tablename__ = "fits"
    __table_args__ = (UniqueConstraint("architecture_id", "law", "data_hash", name="uq_fits_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    architecture_id: Mapped[int] = mapped_column(
        ForeignKey("architectures.id", ondelete="CASCADE"), index=True
    )
    law: Mapped[str] = mapped_column(String(32))
    data_hash: Mapped[str] = mapped_column(String(64))
    run_ids: Mapped[list[int]] = mapped_column(JSON)
    result: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TuningStatus(str, enum.Enum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class Tuning(Base):
    """An LR sweep at the base shape and the transfer check at larger widths and depths (app/tuning.py)."""

    __tablename__ = "tunings"
    __table_args__ = (UniqueConstraint("architecture_id", "params_hash", name="uq_tunings_params"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    architecture_id: Mapped[int] = mapped_column(
        ForeignKey("architectures.id", ondelete="CASCADE"), index=True
    )
    params: Mapped[dict[str, Any]]  # the resolved request: the plan (centre LR, shapes, seeds, grid)
    params_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[TuningStatus] = mapped_column(
        Enum(TuningStatus, name="tuning_status", native_enum=False, length=16), default=TuningStatus.queued
    )
    result: Mapped[dict[str, Any] | None] = mapped_column(
        JSON
    )  # trainer.tuning_result.TuningResult, when final
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]


class TuningRun(Base):
    """A run of a tuning, at a position of its LR grid (lr = centre × grid_factor^lr_index)."""

    __tablename__ = "tuning_runs"

    tuning_id: Mapped[int] = mapped_column(ForeignKey("tunings.id", ondelete="CASCADE"), primary_key=True)
    run_id: Mapped[int] = mapped_column(
        ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    lr_index: Mapped[float] = mapped_column(Float)


class CoordCheckRecord(Base):
    """A coordinate check, computed on first request and kept (keyed by LR, sizes and trainer code)."""

    __tablename__ = "coord_checks"
    __table_args__ = (UniqueConstraint("architecture_id", "key", name="uq_coord_checks_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    architecture_id: Mapped[int] = mapped_column(
        ForeignKey("architectures.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(64))
    result: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
