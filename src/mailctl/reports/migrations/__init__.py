"""Alembic migrations of the reports store."""
