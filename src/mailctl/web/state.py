"""The console's memory across restarts: the latest DNS check per domain and the
latest probe per route (with its last success), in one 0600 JSON file.

Written atomically under a lock, so two console processes never lose each
other's result and a kill -9 leaves the old file or the new one.
"""

from __future__ import annotations

import contextlib
import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mailctl.util.atomic import atomic_write, locked

STATE_FILE = "state.json"


@dataclass(frozen=True, slots=True)
class DnsResult:
    domain: str
    at: float
    status: str  # ok | problems | unknown
    errors: int
    warnings: int
    findings: list[dict[str, str]] = field(default_factory=list)  # severity, code, message, fix


@dataclass(frozen=True, slots=True)
class ProbeRun:
    route: str
    domain: str
    at: float
    ok: bool
    roundtrip: float | None
    message: str
    last_success: float | None = None
    last_roundtrip: float | None = None  # of the last success


class ConsoleState:
    def __init__(self, directory: Path | None) -> None:
        self.dir = directory
        self._lock = threading.Lock()
        self._data: dict[str, dict[str, dict[str, Any]]] = {"dns": {}, "probe": {}}
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._data = self._read()

    @property
    def path(self) -> Path | None:
        return None if self.dir is None else self.dir / STATE_FILE

    def _read(self) -> dict[str, dict[str, dict[str, Any]]]:
        data: dict[str, dict[str, dict[str, Any]]] = {"dns": {}, "probe": {}}
        if self.path is None:
            return data
        with contextlib.suppress(FileNotFoundError, ValueError):
            raw = json.loads(self.path.read_text())
            if isinstance(raw, dict):
                for key in data:
                    if isinstance(raw.get(key), dict):
                        data[key] = raw[key]
        return data

    def _update(self, section: str, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            if self.dir is None or self.path is None:
                self._data[section][key] = value
                return
            with locked(self.dir / ".state.lock"):
                self._data = self._read()  # another process may have written meanwhile
                self._data[section][key] = value
                atomic_write(self.path, json.dumps(self._data, indent=1), 0o600)

    def dns(self, domain: str) -> DnsResult | None:
        raw = self._data["dns"].get(domain)
        try:
            return DnsResult(**raw) if raw else None
        except TypeError:
            return None

    def set_dns(self, result: DnsResult) -> None:
        self._update("dns", result.domain, asdict(result))

    def probes(self, domain: str) -> list[ProbeRun]:
        out = []
        for raw in self._data["probe"].values():
            with contextlib.suppress(TypeError):
                run = ProbeRun(**raw)
                if run.domain == domain:
                    out.append(run)
        return sorted(out, key=lambda r: r.route)

    def record_probe(self, run: ProbeRun) -> ProbeRun:
        """Store a run, carrying the last success forward when this one failed."""
        old = self._data["probe"].get(run.route) or {}
        if not run.ok:
            run = ProbeRun(run.route, run.domain, run.at, False, None, run.message,
                           old.get("last_success"), old.get("last_roundtrip"))
        self._update("probe", run.route, asdict(run))
        return run
