"""The `probe:` section of mailctl.yaml (placeholder; the probe work extends it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ProbeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: dict[str, dict[str, Any]] = {}
