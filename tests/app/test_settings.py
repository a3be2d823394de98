"""Settings come from MUPREDICT_* environment variables, with the embedded SQLite default."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


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
