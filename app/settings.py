"""The one `Settings` object: every knob of the service, read from `MUPREDICT_*` environment variables."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

BUILTIN = "builtin"  # the entry of data_dirs that allows the built-in corpus (trainer/data.py)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUPREDICT_", env_file=".env", extra="ignore")

    database_url: str = Field(
        "sqlite:///./mupredict.db",
        description="SQLAlchemy URL: the embedded SQLite file by default, "
        "postgresql+psycopg://user@host/db in production.",
    )
    api_token: SecretStr | None = Field(
        None, description="When set, write endpoints require `Authorization: Bearer <token>`."
    )
    max_width: int = Field(4096, ge=8, description="Largest proxy width a sweep may request.")
    max_tokens_per_run: int = Field(
        2_000_000_000, ge=1, description="Most training tokens (steps × batch tokens) one run may use."
    )
    max_runs_per_sweep: int = Field(64, ge=1, description="Most runs (widths × seeds) in one sweep request.")
    max_runs_per_tuning: int = Field(
        256, ge=1, description="Most runs one LR tuning may reach (shapes × LRs with extensions × seeds)."
    )
    coord_check_max_params: int = Field(
        100_000_000,
        ge=1,
        description="Largest model (total parameters) a coordinate check may build in the API process.",
    )
    # Width, tokens and run count alone let a 256-layer, 65,536-token-context spec through at width 64:
    # the compute is what a worker spends. Estimated by trainer.accounting.flops_per_token × tokens.
    max_flops_per_run: float = Field(
        1e17,
        gt=0,
        description="Most estimated training FLOPs one run may cost (about 4 min of an H100 at 40% MFU; "
        "the examples need ~1e13). Raise it for GPU workers that train larger proxies.",
    )
    max_flops_per_sweep: float = Field(
        1e18,
        gt=0,
        description="Most estimated training FLOPs of all runs one sweep or LR tuning may queue.",
    )
    max_body_bytes: int = Field(
        1_048_576, ge=1024, description="Largest request body accepted (413 past it); a spec is ~1 kB."
    )
    # Where a corpus may come from: a spec names a path on the workers, so without roots anyone who can
    # POST a spec could train on (and learn the size of) any file a worker can read.
    data_dirs: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: [BUILTIN, "data"],
        min_length=1,
        max_length=64,
        description="Folders a dataset.source must resolve inside (symlinks and `..` resolved first), "
        f"separated by '{os.pathsep}' (or a JSON list); '{BUILTIN}' allows the built-in corpus; a relative "
        "folder is taken from the working directory. Checked by the API (422) and again by each worker.",
    )
    max_corpus_bytes: int = Field(
        2 * 1024**3,
        ge=1,
        description="Most bytes a worker reads for one corpus (a text file, a folder, a .bin file); past it "
        "the run fails with the reason instead of reading a cut corpus.",
    )
    max_corpus_files: int = Field(
        100_000, ge=1, description="Most files and folders a worker walks under one folder source."
    )
    lease_seconds: float = Field(
        60.0, gt=0, description="How long a claimed run stays leased without a heartbeat before requeue."
    )
    heartbeat_seconds: float = Field(
        2.0,
        gt=0,
        description="How often a worker renews its lease and writes its run's progress (loss, tokens/s): "
        "the dashboard's and wait_for's refresh. Keep it well under MUPREDICT_LEASE_SECONDS.",
    )
    device: str = Field(
        "auto",
        max_length=32,
        description="A worker's training device: auto (CUDA when present), cpu, cuda:N.",
    )
    compile: bool | None = Field(
        None,
        description="torch.compile each proxy; unset: on for CUDA devices, off on a CPU (where compiling "
        "costs more than it saves at proxy sizes).",
    )
    gpu_memory_gb: float | None = Field(
        None,
        gt=0,
        description="GiB of activations one training micro-batch may hold; the batch is split into equal "
        "micro-batches whose gradients accumulate (the run is the same). Unset: the GPU's free memory on "
        "CUDA, the whole batch at once on a CPU.",
    )
    cache_dir: Path | None = Field(
        None,
        description="Where workers keep tokenized corpora, keyed by their fingerprint (unset: the "
        "trainer's default, ~/.cache/mupredict).",
    )
    artifact_dir: Path = Field(
        Path("data/artifacts"),
        description="Where workers write checkpoints: a token-horizon trunk's state where each branch "
        "resumes (removed once its branches are stored) and the final state of a run that upscaled runs "
        "start from (kept); workers on several machines share it (NFS, a mounted bucket). One folder per "
        "database. A relative folder is taken from the working directory.",
    )
    max_attempts: int = Field(3, ge=1, description="Claims of one run before it is marked failed.")
    retry_backoff_seconds: float = Field(
        30.0,
        ge=0,
        description="A run requeued after a failed attempt (an error, a lost worker) waits this long before "
        "it is claimed again, twice as long after each further attempt (at most an hour): a run that fails "
        "at once does not cycle through the pool. 0 retries at once.",
    )
    min_runs_for_fit: int = Field(
        4, ge=3, description="Finished proxy widths needed before a scaling law is fitted."
    )
    fit_gate: bool = Field(
        True,
        description="Refuse to predict from, or rank, a fit without a usable scaling trend "
        "(predictor.quality). Off only to look at such a ladder's extrapolation anyway; the fit route "
        "reports the verdict either way.",
    )
    auto_migrate: bool = Field(
        True, description="Upgrade the schema to head on start (the embedded SQLite default relies on it)."
    )
    # The API's connection pool, per process. Requests wait for one of its slots on the event loop, not in
    # a thread, so a flood of reads queues there instead of exhausting the pool (see app.db_slots).
    db_pool_size: int = Field(
        5, ge=2, description="Connections the API keeps open per process (one is kept out of the slots)."
    )
    db_max_overflow: int = Field(
        10, ge=0, description="Further connections the API opens under load, closed again when idle."
    )
    db_pool_timeout: float = Field(
        10.0,
        gt=0,
        description="Longest a request waits for a database slot or connection before answering 503.",
    )
    ready_timeout: float = Field(
        5.0, gt=0, description="`/readyz` answers 503 when the database has not answered within this time."
    )

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> Settings:
        # A lease must survive a missed heartbeat or two (a slow commit, a pause for the collector).
        if self.heartbeat_seconds * 3 > self.lease_seconds:
            raise ValueError(
                f"MUPREDICT_HEARTBEAT_SECONDS {self.heartbeat_seconds:g} must be at most a third of "
                f"MUPREDICT_LEASE_SECONDS {self.lease_seconds:g}: raise the lease or beat more often"
            )
        return self

    @field_validator("api_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        # docker compose passes `${MUPREDICT_API_TOKEN:-}` through as an empty string: that means "no token".
        return None if value == "" else value

    @field_validator("data_dirs", mode="before")
    @classmethod
    def _split_data_dirs(cls, value: object) -> object:
        # PATH-style in the environment ("builtin:/srv/corpora"); a JSON list works too.
        if isinstance(value, str):
            text = value.strip()
            entries = json.loads(text) if text.startswith("[") else text.split(os.pathsep)
            return [entry.strip() for entry in entries if str(entry).strip()]
        return value

    @property
    def allows_builtin(self) -> bool:
        return BUILTIN in self.data_dirs

    @property
    def data_roots(self) -> tuple[Path, ...]:
        """The folders of data_dirs, absolute (the trainer resolves their symlinks)."""
        return tuple(Path(entry).expanduser().absolute() for entry in self.data_dirs if entry != BUILTIN)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
