"""Shared test configuration: the database fixtures for SQLite and PostgreSQL."""

from __future__ import annotations

import os

# Crash-recovery tests retry failed runs within seconds; the backoff between attempts has its own tests
# (tests/app/test_retry_backoff.py), which set it explicitly. Worker subprocesses inherit this.
os.environ.setdefault("MUPREDICT_RETRY_BACKOFF_SECONDS", "0")

pytest_plugins = ["tests.db_fixtures"]
