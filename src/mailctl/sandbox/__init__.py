"""Local real mail stack (Dovecot + Postfix) serving a docker-mailserver config dir.

`mailctl sandbox up|down|status` and the test fixture (tests/fixtures/mailstack.py)
are built on this. Importing it is cheap: the dms provider calls
`notify_change()` after every write.
"""

from mailctl.sandbox.stack import (
    DEFAULT_HOST,
    Sandbox,
    default_state_dir,
    for_folder,
    notify_change,
)
from mailctl.sandbox.state import (
    DEFAULT_PORTS,
    OAuth2Passdb,
    Ports,
    SandboxError,
    SandboxInfo,
    SandboxStatus,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORTS",
    "OAuth2Passdb",
    "Ports",
    "Sandbox",
    "SandboxError",
    "SandboxInfo",
    "SandboxStatus",
    "default_state_dir",
    "for_folder",
    "notify_change",
]
