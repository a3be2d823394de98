"""Database fixtures: every test on SQLite, and on PostgreSQL when MUPREDICT_TEST_POSTGRES_URL is set.

`db_url` yields a migrated database for one backend; `db_session` wraps each test in a transaction
that is rolled back; `fresh_db_url` gives a brand-new database for tests whose processes must commit
(workers, the API under schemathesis).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import migrate
from app.db import make_engine

POSTGRES_ENV = "MUPREDICT_TEST_POSTGRES_URL"
NO_POSTGRES = (
    f"PostgreSQL tests need {POSTGRES_ENV} (for instance postgresql+psycopg://root@127.0.0.1:5432/test); "
    ".ci/run sets it"
)


def postgres_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def backends() -> list[object]:
    return ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


REQUIRE_SERVICES_ENV = "MUPREDICT_TEST_REQUIRE_SERVICES"


def require_service(reason: str) -> None:
    """Skip with the reason on a developer machine; fail in CI, where every service must be up."""
    if os.environ.get(REQUIRE_SERVICES_ENV):
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV} is set, so this is a failure, not a skip)")
    pytest.skip(reason)


def _require_postgres() -> str:
    url = postgres_url()
    if url is None:
        require_service(NO_POSTGRES)
    assert url is not None
    return url


def _reset_postgres(url: str) -> None:
    """Drop whatever an earlier run left, so migrations start from an empty schema."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            # A PostgreSQL that is configured but unreachable fails here: in CI that is an error, not a skip.
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def _migrated_engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Engine]]:
    engines: dict[str, Engine] = {}
    yield engines
    for engine in engines.values():
        engine.dispose()


def _engine_for(backend: str, cache: dict[str, Engine], tmp: Path) -> Engine:
    if backend not in cache:
        if backend == "sqlite":
            engine = make_engine(f"sqlite:///{tmp / 'shared.db'}")
        else:
            url = _require_postgres()
            _reset_postgres(url)
            engine = make_engine(url)
        migrate.upgrade(engine)
        cache[backend] = engine
    return cache[backend]


@pytest.fixture(params=backends())
def db_engine(
    request: pytest.FixtureRequest,
    _migrated_engines: dict[str, Engine],
    tmp_path_factory: pytest.TempPathFactory,
) -> Engine:
    return _engine_for(request.param, _migrated_engines, tmp_path_factory.getbasetemp())


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session whose every commit lands in a savepoint of one outer transaction, rolled back after."""
    connection = db_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture(params=backends())
def fresh_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, migrated database that processes can commit to; dropped afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url
        return
    base = make_url(_require_postgres())
    name = f"mupredict_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
