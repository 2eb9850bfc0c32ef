"""Migadu: the provider (`provider.py`) and its row <-> model mapping (`codec.py`)."""

from mailctl.providers.migadu.provider import MigaduProvider, MigaduSettings

__all__ = ["MigaduProvider", "MigaduSettings"]
