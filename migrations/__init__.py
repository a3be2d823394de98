"""Alembic schema history for SQLite and PostgreSQL (run through `mupredict migrate`)."""
