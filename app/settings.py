"""The one `Settings` object: every knob of the service, read from `MUPREDICT_*` environment variables."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    lease_seconds: float = Field(
        60.0, gt=0, description="How long a claimed run stays leased without a heartbeat before requeue."
    )
    heartbeat_seconds: float = Field(10.0, gt=0, description="How often a worker renews its lease.")
    max_attempts: int = Field(3, ge=1, description="Claims of one run before it is marked failed.")
    min_runs_for_fit: int = Field(
        4, ge=3, description="Finished proxy widths needed before a scaling law is fitted."
    )
    auto_migrate: bool = Field(
        True, description="Upgrade the schema to head on start (the embedded SQLite default relies on it)."
    )

    @field_validator("api_token", mode="before")
    @classmethod
    def _blank_token_is_none(cls, value: object) -> object:
        # docker compose passes `${MUPREDICT_API_TOKEN:-}` through as an empty string: that means "no token".
        return None if value == "" else value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
