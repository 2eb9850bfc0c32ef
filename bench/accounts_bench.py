"""mailadm 1.0.0 vs mailctl: accounts created per second on one mailcow-API emulator.

Both servers take the same POST /?t=TOKEN that Delta Chat sends. The emulator
(tests/emulators/mailcow.py, its own process) adds LATENCY to every call.
Per concurrency level: a fresh token with maxuse = N is redeemed exactly N
times (all must succeed: anything else is an error), then EXTRA more requests
must all be refused, and the mailboxes at the emulator with the token's prefix
must number exactly N ("maxuse held").

    python bench/accounts_bench.py [--mailadm-python PATH]

mailadm runs as documented (gunicorn -w 4 mailadm.app:app) from its own venv,
made on first use the same way as for the import test and `make mailadm-venv`
(tests/accounts/mailadm_peer.py: `pip install mailadm==1.0.0 'setuptools<82'
gunicorn` into .state/mailadm-venv).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOMAIN = "bench.test"
API_KEY = "bench-" + "k" * 26
LATENCY = 0.05
LEVELS = (1, 4, 16)
EXTRA = 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _emulator(port_out: Any, latency: float) -> None:
    from tests.emulators.mailcow import MailcowEmulator

    emu = MailcowEmulator(API_KEY, latency=latency)
    emu.add_domain(DOMAIN, mailboxes=1_000_000, aliases=1_000_000, quota_mib=10**9,
                   maxquota_mib=10240, defquota_mib=1)
    port_out.put(emu.start())
    while True:
        time.sleep(3600)


def mailboxes(api: str, prefix: str) -> int:
    req = urllib.request.Request(f"{api}/get/mailbox/all/{DOMAIN}",
                                 headers={"X-API-Key": API_KEY})
    with urllib.request.urlopen(req, timeout=60) as r:
        rows = json.loads(r.read())
    rows = rows if isinstance(rows, list) else ([rows] if rows else [])
    return sum(1 for m in rows if str(m.get("local_part", "")).startswith(prefix))


def post(url: str) -> int:
    req = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            r.read()
            return int(r.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return exc.code
    except OSError:
        return 0


def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"),
                                   timeout=2)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@dataclass
class Row:
    tool: str
    clients: int
    n: int
    seconds: float
    errors: int
    held: bool

    @property
    def rate(self) -> float:
        return self.n / self.seconds if self.seconds else 0.0


def run_level(tool: str, base: str, secret: str, prefix: str, n: int, clients: int,
              api: str) -> Row:
    url = f"{base}/?t={secret}"
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        codes = Counter(pool.map(lambda _: post(url), range(n)))
    elapsed = time.perf_counter() - start
    errors = n - codes.get(200, 0)
    with ThreadPoolExecutor(max_workers=clients) as pool:
        after = Counter(pool.map(lambda _: post(url), range(EXTRA)))
    held = after.get(200, 0) == 0 and mailboxes(api, prefix) == n
    return Row(tool, clients, codes.get(200, 0), elapsed, errors, held)


class Mailadm:
    def __init__(self, python: Path, api: str, work: Path) -> None:
        self.bin = python.parent
        self.env = {**os.environ, "MAILADM_DB": str(work / "mailadm.db")}
        self.port = free_port()
        self._run("init", "--mail-domain", DOMAIN, "--web-endpoint",
                  f"http://127.0.0.1:{self.port}/", "--mailcow-endpoint", api + "/",
                  "--mailcow-token", API_KEY)
        self.proc = subprocess.Popen(
            [str(self.bin / "gunicorn"), "-w", "4", "--timeout", "60", "-b",
             f"127.0.0.1:{self.port}", "mailadm.app:app"],
            env=self.env, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_up(self.base + "/", self.proc)

    def _run(self, *args: str) -> str:
        r = subprocess.run([str(self.bin / "mailadm"), *args], env=self.env,
                           capture_output=True, text=True, timeout=120)
        if r.returncode:
            raise SystemExit(f"mailadm {args[0]} failed: {r.stderr[-500:]}")
        return r.stdout

    def token(self, name: str, prefix: str, n: int) -> str:
        secret = f"1d_{secrets.token_hex(8)}"
        self._run("add-token", name, "--expiry", "1d", "--maxuse", str(n), "--prefix", prefix,
                  "--token", secret)
        return secret

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class Mailctl:
    def __init__(self, api: str, work: Path, workers: int) -> None:
        self.work = work
        self.port = free_port()
        (work / "mailctl.yaml").write_text(
            f"providers:\n  mc:\n    type: mailcow\n    url: {api.removesuffix('/api/v1')}\n"
            "    api_key: ${env:BENCH_MAILCOW_KEY}\n    concurrency: 32\n"
            f"    rate_limit: {{requests: 1, per_seconds: 1, enabled: false}}\n"
            f"domains:\n  {DOMAIN}:\n    provider: mc\n"
            "accounts:\n  rate_limit: {per_minute: 0}\n  web: {threads: 32}\n")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
        self.env["XDG_CACHE_HOME"] = str(work / "cache")
        self.env["BENCH_MAILCOW_KEY"] = API_KEY
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailctl", "serve", "--port", str(self.port),
             "--workers", str(workers)], cwd=work, env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        wait_up(self.base + "/", self.proc)

    def token(self, name: str, prefix: str, n: int) -> str:
        r = subprocess.run([sys.executable, "-m", "mailctl", "tokens", "add", name,
                            "--maxuse", str(n), "--prefix", prefix, "--json"],
                           cwd=self.work, env=self.env, capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"mailctl tokens add failed: {r.stderr[-500:]}")
        url: str = json.loads(r.stdout)["url"]
        return url.split("t=")[1].split("&")[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def ensure_mailadm(python: Path) -> bool:
    """The peer in its own virtualenv, from PyPI, made on first use (shared with the
    import test: tests/accounts/mailadm_peer.py); another --mailadm-python is used as is."""
    from tests.accounts import mailadm_peer

    if python == mailadm_peer.PYTHON:
        return mailadm_peer.ensure()
    return python.exists()


def main() -> None:
    ap = argparse.ArgumentParser()
    from tests.accounts import mailadm_peer

    ap.add_argument("--mailadm-python", type=Path, default=mailadm_peer.PYTHON,
                    help="python of a venv with mailadm 1.0.0 [default: made on first use]")
    ap.add_argument("--mailadm-n", type=int, default=60, help="accounts per level (mailadm)")
    ap.add_argument("--mailctl-n", type=int, default=300, help="accounts per level (mailctl)")
    ap.add_argument("--workers", type=int, default=2, help="mailctl serve --workers")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()

    ctx = multiprocessing.get_context("spawn")
    q = ctx.Queue()
    emu = ctx.Process(target=_emulator, args=(q, LATENCY), daemon=True)
    emu.start()
    api = q.get(timeout=30)
    rows: list[Row] = []
    work = Path(tempfile.mkdtemp(prefix="accounts-bench-"))
    try:
        if ensure_mailadm(args.mailadm_python):
            (work / "mailadm").mkdir()
            ma = Mailadm(args.mailadm_python, api, work / "mailadm")
            try:
                for c in LEVELS:
                    prefix = f"ma{c}x."
                    secret = ma.token(f"ma{c}", prefix, args.mailadm_n)
                    rows.append(run_level("mailadm 1.0.0", ma.base, secret, prefix,
                                          args.mailadm_n, c, api))
                    print(rows[-1], flush=True)
            finally:
                ma.stop()
        else:
            print(f"mailadm not found at {args.mailadm_python}; mailctl only", file=sys.stderr)
        (work / "mailctl").mkdir()
        mc = Mailctl(api, work / "mailctl", args.workers)
        try:
            for c in LEVELS:
                prefix = f"mc{c}x."
                secret = mc.token(f"mc{c}", prefix, args.mailctl_n)
                rows.append(run_level("mailctl", mc.base, secret, prefix, args.mailctl_n, c,
                                      api))
                print(rows[-1], flush=True)
        finally:
            mc.stop()
    finally:
        emu.terminate()
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {LATENCY * 1000:.0f} ms per emulator call")
    print(f"{'tool':<14} {'clients':>7} {'accounts':>8} {'acc/s':>8} {'errors':>6}  maxuse held")
    for r in rows:
        print(f"{r.tool:<14} {r.clients:>7} {r.n:>8} {r.rate:>8.1f} {r.errors:>6}  "
              f"{'yes' if r.held else 'NO'}")
    ma16 = next((r for r in rows if r.tool.startswith("mailadm") and r.clients == 16), None)
    mc16 = next((r for r in rows if r.tool == "mailctl" and r.clients == 16), None)
    if ma16 and mc16 and ma16.rate:
        print(f"\nat 16 clients: mailctl {mc16.rate / ma16.rate:.1f}x mailadm")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ | {"rate": r.rate} for r in rows],
                                        indent=2))


if __name__ == "__main__":
    main()
