"""Who did what in the console: one JSON line per action, in a 0600 file.

An entry names the actor (email or subject, and how they signed in), the
client address, the action, its target and the outcome, never a secret: a
new password or app password, a token secret or an OIDC token is simply not
something `record` accepts (its fields are plain strings checked against the
known secrets, which are masked if a caller passes one by mistake). Lines are
appended with O_APPEND, so concurrent writers never interleave within a line.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from mailctl.secret import scrub

log = logging.getLogger("mailctl.web.audit")


class AuditLog:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.fchmod(fd, 0o600)
            os.close(fd)

    def record(self, actor: str, action: str, target: str = "", outcome: str = "ok", *,
               via: str = "", client: str = "", detail: str = "") -> None:
        entry = {"time": round(time.time(), 3), "actor": actor, "via": via, "client": client,
                 "action": action, "target": target, "outcome": outcome}
        if detail:
            entry["detail"] = detail
        line = scrub(json.dumps(entry, ensure_ascii=False, separators=(",", ":")))
        log.info("audit %s", line)
        if self.path is None:
            return
        data = (line + "\n").encode()
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

    def tail(self, n: int = 50) -> list[dict[str, object]]:
        """The last `n` entries, newest first (for the admin page)."""
        if self.path is None or not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * n))
            lines = fh.read().decode(errors="replace").splitlines()
        out: list[dict[str, object]] = []
        for line in reversed(lines[-n:]):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                out.append(value)
        return out
