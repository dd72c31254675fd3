"""Alembic migrations of the pgworker schema (installed as the pgworker.migrations package)."""
