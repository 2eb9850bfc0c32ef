"""The `dns:` block of a domain in mailctl.yaml (placeholder; the DNS work extends it)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DnsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: str | None = None  # provider profile; default: derived from the provider type
    relays: list[str] = []
