"""The `accounts:` section of mailctl.yaml (placeholder; the accounts work extends it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AccountsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database: str | None = None  # SQLAlchemy URL; default: SQLite beside the config
