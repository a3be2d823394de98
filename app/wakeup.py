"""Idle workers wake when runs are queued: LISTEN/NOTIFY on PostgreSQL, the poll interval elsewhere.

Whatever queues runs calls `announce(session)` in the same transaction; PostgreSQL delivers the
notification when that transaction commits, so a worker never wakes for a run it cannot see yet. A
worker's `Wakeup` listens on a connection of its own, opened before its first claim (a run queued
between an empty claim and the wait is not missed: its notification waits on the connection). Polling
stays as the fallback: on SQLite, and while the listening connection is down (it reconnects on the
next wait).
"""

from __future__ import annotations

import logging
import threading
import time

import psycopg
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

CHANNEL = "mupredict_runs_queued"
SLICE_SECONDS = 0.25  # how often a waiting worker looks at its stop flag

log = logging.getLogger(__name__)


def announce(session: Session) -> None:
    """Wake idle workers once `session` commits (PostgreSQL; elsewhere they find the runs by polling)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"NOTIFY {CHANNEL}"))


class Wakeup:
    """`wait(seconds)` returns after `seconds`, at a notification, or when `stopping` is set."""

    def __init__(self, engine: Engine, stopping: threading.Event) -> None:
        self._stopping = stopping
        self._listens = engine.dialect.name == "postgresql"
        # psycopg's own connection string: the listening connection is not one of the pool's.
        self._conninfo = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._conn: psycopg.Connection | None = None

    def start(self) -> None:
        """Listen from now on (PostgreSQL); a failure leaves the worker polling until the next wait."""
        if self._listens:
            self._connect()

    def wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        conn = self._connect() if self._listens else None
        if conn is None:
            self._stopping.wait(seconds)
            return
        try:
            while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
                # The first notification ends the wait; any others pending end the next one at once,
                # which costs an empty claim at most.
                if list(conn.notifies(timeout=min(left, SLICE_SECONDS), stop_after=1)):
                    return
        except psycopg.Error as exc:
            log.warning("listening for queued runs failed (%s); polling until it reconnects", exc)
            self.close()
            self._stopping.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connect(self) -> psycopg.Connection | None:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        try:
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=5)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except psycopg.Error as exc:
            log.warning("cannot listen for queued runs (%s); polling instead", exc)
            self._conn = None
        return self._conn
