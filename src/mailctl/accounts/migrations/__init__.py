"""Alembic migrations of the accounts store (run by `mailctl.accounts.db.migrate`)."""
