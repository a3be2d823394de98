"""Idle workers start a queued run within a second (issue 15 point 5): woken by NOTIFY on PostgreSQL,
with polling as the fallback (SQLite, or a listening connection that is down)."""

from __future__ import annotations

import threading
import time

from sqlalchemy import create_engine, make_url

from app.settings import Settings
from app.wakeup import Wakeup
from app.worker import Worker
from tests.app.api_helpers import enqueue_one, one_run_spec, stored_run


def test_a_queued_run_starts_within_a_second_with_an_idle_worker(fresh_db_url: str) -> None:
    postgres = make_url(fresh_db_url).get_backend_name() == "postgresql"
    settings = Settings(_env_file=None, database_url=fresh_db_url)
    # On PostgreSQL the poll is far longer than the target, so only the notification can meet it.
    worker = Worker(settings, poll_seconds=30.0 if postgres else 0.3)
    thread = threading.Thread(target=worker.run, kwargs={"max_runs": 1})
    thread.start()
    try:
        time.sleep(1.0)  # the worker has found the queue empty and waits
        run_id = enqueue_one(settings, one_run_spec("builtin"))
        thread.join(timeout=60)
        assert not thread.is_alive()
    finally:
        worker.stopping.set()
        thread.join(timeout=10)
    run = stored_run(settings, run_id)
    assert run.started_at is not None
    assert (run.started_at - run.created_at).total_seconds() < 1.0


def test_without_a_listening_connection_the_wait_is_a_poll() -> None:
    unreachable = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")  # connection refused
    stopping = threading.Event()
    wakeup = Wakeup(unreachable, stopping)
    wakeup.start()  # logs and carries on
    started = time.monotonic()
    wakeup.wait(0.3)
    assert 0.25 < time.monotonic() - started < 5
    stopping.set()
    started = time.monotonic()
    wakeup.wait(30)  # a stopping worker does not wait out its poll
    assert time.monotonic() - started < 5
