"""Engine and session factory for the configured database (embedded SQLite, or PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        # Workers and the API share one file: WAL lets readers run beside a writer, and the busy timeout
        # makes a writer wait for the lock instead of failing at once.
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the driver, issue BEGIN (the driver's own handling breaks savepoints).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers take the lock up front: a deferred transaction that reads and then writes cannot
            # wait for another writer (SQLite answers "database is locked" at once), an immediate one
            # can. Readers (see `for_reads`) begin deferred, so under WAL they never wait for anyone.
            conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get(SQLITE_BEGIN, 'IMMEDIATE')}")

        return engine
    # pre_ping replaces connections the server dropped (a restart, pg_terminate_backend) before use.
    return create_engine(url, pool_pre_ping=True, **kwargs)


SQLITE_BEGIN = "mupredict_sqlite_begin"


def for_reads(engine: Engine) -> Engine:
    """The same engine (one pool) for transactions that only read, or whose only write comes first.

    On SQLite they begin DEFERRED, so many concurrent readers never queue for the write lock; on
    PostgreSQL nothing changes.
    """
    if engine.dialect.name != "sqlite":
        return engine
    return engine.execution_options(**{SQLITE_BEGIN: "DEFERRED"})


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
