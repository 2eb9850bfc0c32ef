"""Reading a file a user named, without hanging, exhausting memory or crashing.

A path in a config or on the command line can point anywhere: at a FIFO (a
plain `open()` blocks forever waiting for a writer), a device, a directory, a
multi-gigabyte log, or bytes that are not UTF-8. `read_text` opens without
blocking, checks on the open descriptor (no race between check and read) that
it is a regular file, reads at most `limit` bytes and decodes strictly, so
each of those ends in a `FileReadError` whose message names the file and says
what was expected.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mailctl.errors import MailctlError

MiB = 1024 * 1024


class FileReadError(MailctlError, ValueError):
    """A file that cannot be used as text; the message names it and says why."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe (FIFO)"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def read_bytes(path: Path, *, limit: int, what: str = "file") -> bytes:
    """At most `limit` bytes of the regular file at `path`, or `FileReadError`."""
    try:
        # O_NONBLOCK: opening a FIFO for reading must not wait for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileReadError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise FileReadError(f"{what} {path} is a directory (expected a file)") from None
    except OSError as exc:
        raise FileReadError(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValueError:  # a NUL byte in the name (a YAML "\0" escape)
        raise FileReadError(f"{what} {str(path)!r} is not a usable file name "
                            "(it contains a NUL byte)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileReadError(f"{what} {path} is {_kind(st.st_mode)} (expected a regular file)")
        if st.st_size > limit:
            raise FileReadError(
                f"{what} {path} is too large ({st.st_size} bytes; at most {limit} are read)")
        chunks: list[bytes] = []
        size = 0
        while True:  # the file may grow while we read: never take more than `limit`
            chunk = os.read(fd, min(1 * MiB, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise FileReadError(f"{what} {path} is too large (more than {limit} bytes)")
        return b"".join(chunks)
    except OSError as exc:
        raise FileReadError(f"cannot read {what} {path}: {exc.strerror}") from None
    finally:
        os.close(fd)


def decode_utf8(data: bytes, path: Path, what: str = "file") -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileReadError(
            # Where, not which byte: the file may hold a secret.
            f"{what} {path} is not UTF-8 text (invalid byte at line {line}, offset {exc.start})",
            "save it as UTF-8; a binary file cannot be used here") from None


def read_text(path: Path, *, limit: int, what: str = "file") -> str:
    """The UTF-8 text of the regular file at `path` (at most `limit` bytes)."""
    return decode_utf8(read_bytes(path, limit=limit, what=what), path, what)
