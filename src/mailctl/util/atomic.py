"""Durable, atomic file replacement and an advisory lock.

Every piece of state mailctl writes goes through here: a reader (Postfix,
Dovecot, the next mailctl run) sees the old file or the new one, never a torn
one, even after kill -9 or a power cut (the data and the rename are fsynced).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def atomic_write(path: Path, data: bytes | str, mode: int | None = None) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if mode is None:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o644
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # umask must not widen or narrow what we asked for
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked(lock_path: Path, timeout: float | None = None) -> Iterator[None]:
    """Exclusive flock on `lock_path`; released by the kernel if we die."""
    import time

    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if timeout is None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        else:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{lock_path} is locked by another process") from None
                    time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def remove_stale_temps(directory: Path, names: list[str]) -> None:
    """Temp files left by a killed writer are garbage: the rename never happened."""
    for name in names:
        for tmp in directory.glob(f".{name}.*.tmp"):
            with contextlib.suppress(OSError):
                tmp.unlink()
