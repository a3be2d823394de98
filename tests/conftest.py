"""Shared test configuration: the database fixtures for SQLite and PostgreSQL."""

from __future__ import annotations

pytest_plugins = ["tests.db_fixtures"]
