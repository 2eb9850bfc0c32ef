"""Stalwart: 0.16+ JMAP management (`provider.py`) and the ≤ 0.15 `/api/principal` (`legacy.py`)."""

from mailctl.providers.stalwart.provider import StalwartProvider, StalwartSettings

__all__ = ["StalwartProvider", "StalwartSettings"]
