"""Whole domains: back up, restore and move a mail domain between providers.

Built only from the other capabilities (STYLE 2.4, "one engine per job"):
declared state comes from provisioning's `import` and goes back through
plan/apply; mail goes through the sync engine into Maildir trees or another
provider's IMAP; DNS through the dns library. Nothing here copies mail or
talks to a provider another way.

The public names are imported on first use, so that the config loader (which
reads `mailctl.domain.settings` for every command) does not pay for them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BackupResult", "MailAccessError", "RestoreResult", "access_for", "backup_domain",
           "restore_domain"]

_WHERE = {"BackupResult": "backup", "backup_domain": "backup", "RestoreResult": "restore",
          "restore_domain": "restore", "MailAccessError": "access", "access_for": "access"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"mailctl.domain.{_WHERE[name]}"), name)
    raise AttributeError(name)
