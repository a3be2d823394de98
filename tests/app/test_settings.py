"""Settings come from MUPREDICT_* environment variables, with the embedded SQLite default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

import trainer
from app.limits import corpus_access
from app.models import RunStatus
from app.settings import Settings
from app.worker import Worker
from tests.app.api_helpers import enqueue_one, one_run_spec, stored_run


def test_defaults_are_the_embedded_sqlite(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUPREDICT_DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url == "sqlite:///./mupredict.db"
    assert settings.is_sqlite
    assert settings.api_token is None


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUPREDICT_DATABASE_URL", "postgresql+psycopg://u@db/x")
    monkeypatch.setenv("MUPREDICT_API_TOKEN", "s3cret")
    monkeypatch.setenv("MUPREDICT_MAX_ATTEMPTS", "5")
    settings = Settings(_env_file=None)
    assert not settings.is_sqlite
    assert settings.api_token is not None and settings.api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)
    assert settings.max_attempts == 5


def test_bad_limit_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUPREDICT_MAX_ATTEMPTS", "0")
    with pytest.raises(ValidationError, match="max_attempts"):
        Settings(_env_file=None)


def test_blank_token_means_no_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUPREDICT_API_TOKEN", "")
    assert Settings(_env_file=None).api_token is None


def test_worker_settings_flow_from_a_dotenv_file_down_to_the_trainer(
    tmp_path: Path, fresh_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 15 point 1: the corpus cache, the device, compile and the heartbeat come from the settings
    (a .env file here), and the trainer, which reads no environment, gets them as arguments."""
    for name in (
        "MUPREDICT_CACHE_DIR",
        "MUPREDICT_DEVICE",
        "MUPREDICT_HEARTBEAT_SECONDS",
        "MUPREDICT_COMPILE",
    ):
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "corpus-cache"
    env = tmp_path / ".env"
    env.write_text(
        f"MUPREDICT_DATABASE_URL={fresh_db_url}\nMUPREDICT_CACHE_DIR={cache}\nMUPREDICT_DEVICE=cpu\n"
        "MUPREDICT_HEARTBEAT_SECONDS=0.5\nMUPREDICT_COMPILE=false\nMUPREDICT_GPU_MEMORY_GB=0.5\n"
    )
    settings = Settings(_env_file=env)
    assert settings.cache_dir == cache and settings.device == "cpu" and settings.heartbeat_seconds == 0.5
    assert corpus_access(settings).cache_dir == cache

    seen: dict[str, object] = {}
    real_train = trainer.train

    def spy(*args: object, **kwargs: object) -> object:
        seen.update(kwargs)
        return real_train(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("trainer.train", spy)
    run_id = enqueue_one(settings, one_run_spec("builtin"))
    worker = Worker(settings, poll_seconds=0.1)
    assert worker.device == "cpu"  # no --device: the settings' device
    assert worker.run(max_runs=1) == 1
    assert stored_run(settings, run_id).status == RunStatus.succeeded
    assert seen["device"] == "cpu" and seen["compile"] is False
    assert seen["memory_budget"] == 0.5 * 2**30  # GiB in the settings, bytes for the trainer
    assert any((cache / "corpora").iterdir())  # the corpus was tokenized into the settings' folder


def test_compile_is_left_to_the_device_unless_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MUPREDICT_COMPILE", raising=False)
    assert Settings(_env_file=None).compile is None  # the trainer's default: on for CUDA, off on a CPU
    monkeypatch.setenv("MUPREDICT_COMPILE", "true")
    assert Settings(_env_file=None).compile is True


def test_the_trainer_reads_no_environment() -> None:
    sources = Path(trainer.__file__).parent.glob("*.py")
    offenders = [p.name for p in sources if re.search(r"os\.environ|getenv", p.read_text())]
    assert offenders == []


def test_a_heartbeat_must_fit_well_inside_the_lease() -> None:
    with pytest.raises(ValidationError, match="at most a third of MUPREDICT_LEASE_SECONDS"):
        Settings(_env_file=None, lease_seconds=60, heartbeat_seconds=30)
    assert Settings(_env_file=None, lease_seconds=60, heartbeat_seconds=20).heartbeat_seconds == 20
