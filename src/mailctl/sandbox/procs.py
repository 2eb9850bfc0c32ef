"""Find, identify and stop the sandbox's daemons through /proc, by pid only.

Nothing here matches processes by name: other Dovecot/Postfix instances
(another sandbox, a pytest-xdist worker, the machine's own mail server) must
never be touched. A pid counts as ours only if /proc shows it running with
this sandbox's config, and children are remembered with their start time so
a recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    start: int  # /proc/PID/stat starttime (clock ticks since boot)


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, starttime), or None if there is no such process."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: split after the last ')'
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[1]), int(fields[19])


def proc(pid: int) -> Proc | None:
    st = _stat(pid)
    return Proc(pid, st[2]) if st else None


def alive(p: Proc | int) -> bool:
    """Running and not a zombie (orphans may stay unreaped here, so kill -0 lies)."""
    pid = p if isinstance(p, int) else p.pid
    st = _stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return False
    return isinstance(p, int) or st[2] == p.start


def cmdline(pid: int) -> list[str]:
    try:
        raw = (_PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def environ(pid: int) -> dict[str, str]:
    try:
        raw = (_PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode(errors="replace").partition("=")
        if sep:
            out[key] = value
    return out


def children(pid: int) -> list[Proc]:
    out = []
    for entry in os.scandir(_PROC):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st and st[1] == pid:
                out.append(Proc(int(entry.name), st[2]))
    return out


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def is_dovecot_master(pid: int, config: Path) -> bool:
    args = cmdline(pid)
    return bool(args) and args[0].endswith("dovecot") and str(config) in args


def is_postfix_master(pid: int, config_dir: Path) -> bool:
    args = cmdline(pid)
    if not args or not args[0].endswith("master"):
        return False
    return environ(pid).get("MAIL_CONFIG") == str(config_dir)


def wait_gone(procs: Iterable[Proc], timeout: float, poll: float = 0.02) -> list[Proc]:
    """Wait until none of `procs` is alive; return the ones still alive at the deadline."""
    left = [p for p in procs if alive(p)]
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(poll)
        left = [p for p in left if alive(p)]
    return left


def signal_all(procs: Iterable[Proc], sig: signal.Signals) -> None:
    for p in procs:
        if alive(p):  # re-checked right before the signal: never a recycled pid
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, sig)


def stop_masters(
    masters: list[Proc], timeout: float = 10.0, log: Callable[[str], None] | None = None
) -> None:
    """SIGTERM the masters together, wait, SIGKILL after `timeout`, then reap their children.

    The masters stop their own children on SIGTERM; the children seen before
    are waited for as well, and killed only if they outlive their master by
    `timeout` (they are still the same processes: start times are compared).
    """
    kids = [c for m in masters for c in children(m.pid)]
    signal_all(masters, signal.SIGTERM)
    stuck = wait_gone(masters, timeout)
    if stuck:
        if log:
            log(f"pids {[p.pid for p in stuck]} ignored SIGTERM for {timeout:.0f}s; SIGKILL")
        signal_all(stuck, signal.SIGKILL)
        wait_gone(stuck, 5.0)
    left = wait_gone(kids, timeout)
    if left:
        if log:
            log(f"child pids {[p.pid for p in left]} outlived their master; SIGKILL")
        signal_all(left, signal.SIGKILL)
        wait_gone(left, 5.0)
