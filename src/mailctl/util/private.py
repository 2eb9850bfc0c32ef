"""Folders and files that hold state or secrets: folders mailctl creates 0700, files 0600.

One home for the rule, used by every capability (sync state, the accounts store,
the providers' rate-limit state, the DNS plan cache, the config parse cache).
`mkdir(parents=True, mode=0o700)` is not enough: it gives the mode only to the
last folder and the umask (000 in some shells) to the others. Folders that
exist already are left alone: they may be the user's ($HOME, $XDG_STATE_HOME).

Standard library only, and no pathlib: the lean entry of a no-change backup
(sync/runner.py) imports this.
"""

from __future__ import annotations

import os
import stat

PathArg = str | os.PathLike[str]


def private_dir(path: PathArg) -> None:
    """Create `path` and any missing parents 0700 (existing folders are not touched)."""
    name = os.fspath(path)
    if os.path.isdir(name):
        return
    parent = os.path.dirname(os.path.abspath(name))
    if parent != os.path.abspath(name):
        private_dir(parent)
    try:
        os.mkdir(name, 0o700)
    except FileExistsError:
        if not os.path.isdir(name):
            raise
    else:
        os.chmod(name, 0o700)  # a umask may have taken some of the owner's own bits


def private_file(path: PathArg) -> None:
    """Make sure `path` exists with mode 0600 before a database opens it (SQLite gives
    its -wal and -shm files the database file's mode)."""
    fd = os.open(os.fspath(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
