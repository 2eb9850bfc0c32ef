"""Sites (config + dms folder + store), a real `mailctl serve`, and HTTP helpers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cli import Result, run_cli, write_config

DOMAIN = "example.org"


@dataclass
class Site:
    dir: Path
    dms: Path
    domain: str
    env: dict[str, str]

    def cli(self, *args: str | Path, timeout: float = 120) -> Result:
        return run_cli(*args, cwd=self.dir, env=self.env, timeout=timeout)

    def json(self, *args: str | Path) -> Any:
        r = self.cli(*args, "--json")
        assert r.code == 0, r.all
        return json.loads(r.out)

    def dms_accounts(self) -> set[str]:
        path = self.dms / "postfix-accounts.cf"
        if not path.exists():
            return set()
        return {ln.split("|")[0] for ln in path.read_text().splitlines()
                if ln and not ln.startswith("#")}


def make_site(directory: Path, dms: Path, domain: str = DOMAIN, accounts_yaml: str = "",
              db_url: str | None = None) -> Site:
    dms.mkdir(exist_ok=True)
    text = (f"providers:\n  sb:\n    type: dms\n    path: {dms}\n    lock_timeout: 2\n"
            f"domains:\n  {domain}:\n    provider: sb\n") + accounts_yaml.lstrip("\n")
    write_config(directory, text)
    env = {"MAILCTL_DB": db_url} if db_url else {}
    return Site(directory, dms, domain, env)


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path, tmp_path / "dms", accounts_yaml=NO_RATE_LIMIT)


NO_RATE_LIMIT = """
accounts:
  rate_limit: {per_minute: 0}
"""


def secret_of(token: dict[str, Any]) -> str:
    """The secret in a token's invite URL (as printed by tokens add/rotate --json)."""
    return str(token["url"].split("t=")[1].split("&")[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def post(self, path: str = "/", timeout: float = 60,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        return http("POST", self.url + path, timeout, headers)


def http(method: str, url: str, timeout: float = 60,
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
    req = urllib.request.Request(url, data=b"" if method == "POST" else None, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, dict(exc.headers), json.loads(body)  # not JSON -> the test fails


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start the real `mailctl serve` for a site; stopped at teardown."""
    started: list[Server] = []

    def start(site: Site, workers: int = 1, *extra: str) -> Server:
        port = free_port()
        log = site.dir / f"serve-{port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
        env.update(site.env)
        with open(log, "wb") as fh:
            proc = subprocess.Popen(
                [sys.executable, "-m", "mailctl", "serve", "--host", "127.0.0.1",
                 "--port", str(port), "--workers", str(workers), *extra],
                cwd=site.dir, env=env, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True)
        server = Server(f"http://127.0.0.1:{port}", proc, log)
        started.append(server)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"serve exited: {log.read_text()}")
            try:
                if http("GET", server.url + "/health", 2)[0] == 200:
                    return server
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"serve did not come up: {log.read_text()}")

    yield start
    for s in started:
        if s.proc.poll() is None:
            os.killpg(s.proc.pid, signal.SIGTERM)
            try:
                s.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(s.proc.pid, signal.SIGKILL)
