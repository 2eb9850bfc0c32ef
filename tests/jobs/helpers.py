"""Worker processes standing in for hosts, and counting connections at a server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.fixtures.cli import Result, run_cli

ROOT = Path(__file__).resolve().parents[2]
QUEUE_PW = "Qu3ue-Secret-pw-9917"  # in every queue URL: must never be printed or logged


def host_env(base: Path, name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A host's own environment: its own HOME and state directory, nothing shared but the
    queue and the mail servers."""
    home = base / f"host-{name}"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    env.update({"HOME": str(home), "XDG_STATE_HOME": str(home / "state"), "NO_COLOR": "1",
                "MAILCTL_JOBS_RETRY_WAIT": "1", "MAILCTL_SYNC_BATCH": "3"})
    env.update(extra or {})
    return env


@dataclass
class Workers:
    """`mailctl worker` processes, each with its own environment and log."""

    base: Path
    queue: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)
    started: int = 0

    def start(self, name: str, *args: str, extra: dict[str, str] | None = None) -> str:
        self.started += 1
        log = self.base / f"worker-{name}-{self.started}.log"
        self.logs.append(log)
        wname = f"{name}-{self.started}"
        with open(log, "wb") as fh:
            self.procs[wname] = subprocess.Popen(
                [sys.executable, "-m", "mailctl", "worker", "--queue", self.queue,
                 "--name", wname, "--stalled-after", "3", *args],
                cwd=ROOT, env=host_env(self.base, name, extra), stdout=fh, stderr=fh)
        return wname

    def kill9(self, wname: str) -> None:
        p = self.procs.pop(wname)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)

    def stop(self) -> None:
        for p in self.procs.values():
            p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs.clear()

    def output(self) -> str:
        return "".join(log.read_text(errors="replace") for log in self.logs if log.exists())


def jobs_cli(base: Path, *args: str | Path, timeout: float = 120) -> Result:
    return run_cli(*args, cwd=base, env={"MAILCTL_JOBS_RETRY_WAIT": "1"}, timeout=timeout)


def established(port: int) -> int:
    """Connections the server on `port` holds (ESTABLISHED sockets whose local port is
    the server's), read from the kernel's tables: what the server sees, whoever opened
    them. Counted as a set of peers: the kernel's table may list a socket twice when it
    changes between two pages of one read."""
    peers: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if parts[3] == "01" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                peers.add(parts[2])
    return len(peers)


class ConnectionCounter:
    """The most connections seen at a port, sampled every few milliseconds."""

    def __init__(self, port: int) -> None:
        self.port, self.peak, self.samples = port, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, established(self.port))
            self.samples += 1
            time.sleep(0.005)

    def __enter__(self) -> ConnectionCounter:
        self._t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
