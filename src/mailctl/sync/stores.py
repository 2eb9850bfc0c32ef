"""An endpoint to the store that serves it: the one module that knows every store type.

Kept apart from endpoint.py (plain data: what the user typed) so that the stores
may import the endpoint type while nothing imports back: endpoint.py <- imapstore.py,
stores.py -> imapstore.py, maildir.py. Each store module is imported only when an
endpoint of its kind is opened (verifying two Maildir trees never loads the IMAP
client).
"""

from __future__ import annotations

from mailctl.secret import Secret
from mailctl.sync.endpoint import Endpoint
from mailctl.sync.model import Store, SyncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from mailctl.sync.auth import Auth


def open_store(ep: Endpoint, password: Secret | Auth | None = None, *,
               cafile: str | None = None,
               fsync: bool = True, readonly: bool = False) -> Store:
    """A store that connects on first use (a no-change run never touches the target)."""
    if ep.kind == "maildir":
        from mailctl.sync.maildir import MaildirStore

        assert ep.path is not None
        return MaildirStore(ep.path, fsync=fsync)
    if ep.kind == "mbox":
        from mailctl.sync.mbox import MboxStore

        assert ep.path is not None
        return MboxStore(ep.path, ep.mode)
    from mailctl.sync.imapstore import ImapStore

    if password is None:
        raise SyncError(f"{ep.label} needs a password")
    return ImapStore(ep, password, cafile=cafile, readonly=readonly)
