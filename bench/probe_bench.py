"""Probe overhead: `mailctl probe run`'s engine against a minimal raw smtplib +
imaplib roundtrip, on the same sandbox (real Postfix + Dovecot), in one run.

Both do the same work per roundtrip: IMAP login + SELECT, SMTP send, wait for
the marker header with a server-side SEARCH, delete it, log out. The raw peer
polls (NOOP + UID SEARCH) every 10 ms; the engine adds what makes it a probe
(capabilities, spam-folder STATUS, the sweep of leftovers, stage labelling).
Runs alternate engine/raw so both see the same machine load.

Reported: "roundtrip" = send start -> message visible (what the probe
reports as mailctl_probe_roundtrip_seconds; the bar: engine median within
5 ms of raw), and "run" = wall time of the whole call (connect to logout).

    python bench/probe_bench.py [-n 100] [--mode submission|smtp] [--cli 10]
"""

from __future__ import annotations

import argparse
import imaplib
import os
import platform
import shutil
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from mailctl.probe.engine import run_route
from mailctl.probe.resolve import Route, plan
from mailctl.probe.settings import ProbeSettings
from mailctl.providers.dms.hashing import FAST_ROUNDS, sha512_crypt
from mailctl.sandbox import Ports, Sandbox, SandboxInfo
from mailctl.sandbox.render import ACCOUNTS_FILE, write_atomic

USER, PASSWORD = "probe@bench.test", "bench-probe-pw-1"


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def route_settings(info: SandboxInfo, mode: str) -> dict[str, object]:
    sub = mode == "submission"
    smtp = ({"host": info.host, "port": info.ports.submission, "tls": "starttls",
             "username": USER, "password": "${env:BENCH_PW}", "ca_file": str(info.ca_file)}
            if sub else {"host": info.host, "port": info.ports.smtp, "tls": "none"})
    imap = {"host": info.host, "username": USER, "password": "${env:BENCH_PW}",
            "port": info.ports.imaps if sub else info.ports.imap,
            "tls": "tls" if sub else "none", "ca_file": str(info.ca_file)}
    return {"sender": USER if sub else "bench@outside.test", "recipient": USER,
            "smtp": smtp, "imap": imap, "timeout": 30}


def raw_roundtrip(info: SandboxInfo, mode: str, poll: float = 0.01) -> tuple[float, float]:
    """The minimal peer: stdlib only, 10 ms poll, UID STORE + UID EXPUNGE."""
    ctx = ssl.create_default_context(cafile=str(info.ca_file))
    sub = mode == "submission"
    m = (imaplib.IMAP4_SSL(info.host, info.ports.imaps, ssl_context=ctx, timeout=10) if sub
         else imaplib.IMAP4(info.host, info.ports.imap, timeout=10))
    m.login(USER, PASSWORD)
    m.select("INBOX")
    token = uuid.uuid4().hex
    msg = (f"From: <{USER}>\r\nTo: <{USER}>\r\nSubject: raw {token}\r\n"
           f"X-Raw-Probe: {token}\r\n\r\nraw probe\r\n").encode()
    t0 = time.monotonic()
    with smtplib.SMTP(info.host, info.ports.submission if sub else info.ports.smtp,
                      timeout=10) as s:
        if sub:
            s.starttls(context=ctx)
            s.login(USER, PASSWORD)
        s.sendmail(USER, [USER], msg)
    sent = time.monotonic() - t0
    while True:
        _, data = m.uid("SEARCH", "HEADER", "X-Raw-Probe", token)
        if data and data[0]:
            found = time.monotonic() - t0
            uids = data[0].decode().replace(" ", ",")
            m.uid("STORE", uids, "+FLAGS.SILENT", r"(\Deleted)")
            m.uid("EXPUNGE", uids)
            m.logout()
            return sent, found
        if time.monotonic() - t0 > 30:
            raise SystemExit("raw roundtrip timed out")
        time.sleep(poll)
        m.noop()


def stats(xs: list[float]) -> tuple[float, float]:
    xs = sorted(xs)
    p99 = xs[min(len(xs) - 1, round(0.99 * (len(xs) - 1)))]
    return statistics.median(xs) * 1000, p99 * 1000


def bench_mode(info: SandboxInfo, route: Route, mode: str, n: int) -> None:
    eng_rt, eng_run, raw_rt, raw_run, eng_send, raw_send = [], [], [], [], [], []
    for _ in range(3):  # warm-up: first TLS handshakes, Dovecot index creation
        run_route(route, 900)
        raw_roundtrip(info, mode)
    for _ in range(n):
        t = time.perf_counter()
        res = run_route(route, 900)
        eng_run.append(time.perf_counter() - t)
        if not res.ok or res.roundtrip_seconds is None:
            raise SystemExit(f"probe failed: {res.message}")
        eng_rt.append(res.roundtrip_seconds)
        eng_send.append(res.send_seconds or 0.0)
        t = time.perf_counter()
        sent, found = raw_roundtrip(info, mode)
        raw_send.append(sent)
        raw_rt.append(found)
        raw_run.append(time.perf_counter() - t)
    print(f"\n{mode} (n={n})           median ms   p99 ms")
    for label, xs in (("engine roundtrip", eng_rt), ("raw    roundtrip", raw_rt),
                      ("engine send", eng_send), ("raw    send", raw_send),
                      ("engine run", eng_run), ("raw    run", raw_run)):
        med, p99 = stats(xs)
        print(f"  {label:<18} {med:9.1f} {p99:8.1f}")
    diff = stats(eng_rt)[0] - stats(raw_rt)[0]
    print(f"  engine - raw median roundtrip: {diff:+.1f} ms "
          f"({'within' if diff <= 5 else 'OVER'} the 5 ms bar)")


def bench_cli(workdir: Path, n: int) -> None:
    times = []
    env = dict(os.environ, BENCH_PW=PASSWORD)
    for _ in range(n):
        t = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "mailctl", "probe", "run"], cwd=workdir,
                              env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - t)
        if proc.returncode != 0:
            raise SystemExit(f"mailctl probe run failed: {proc.stdout}{proc.stderr}")
    med, _ = stats(times)
    print(f"\n`mailctl probe run` process, one route (n={n}): median {med:.0f} ms, "
          f"max {max(times) * 1000:.0f} ms (Python start + imports + roundtrip)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100)
    ap.add_argument("--mode", choices=["submission", "smtp", "both"], default="both")
    ap.add_argument("--cli", type=int, default=10, help="also time N `mailctl probe run`")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root: Postfix's master must start as root")
    base = Path(tempfile.mkdtemp(prefix="mailctl-probe-bench-", dir="/tmp"))
    os.chmod(base, 0o755)
    (base / "dms").mkdir()
    write_atomic(base / "dms" / ACCOUNTS_FILE, f"{USER}|{sha512_crypt(PASSWORD, FAST_ROUNDS)}\n")
    sandbox = Sandbox(base / "state", base / "dms", Ports(*free_ports(5)))
    t = time.perf_counter()
    info = sandbox.up()
    print(f"{time.strftime('%Y-%m-%d')} {platform.node()} {platform.machine()}, "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"sandbox up in {time.perf_counter() - t:.2f}s")
    os.environ["BENCH_PW"] = PASSWORD
    try:
        modes = ["submission", "smtp"] if a.mode == "both" else [a.mode]
        for mode in modes:
            settings = ProbeSettings.model_validate({"routes": {mode: route_settings(info,
                                                                                     mode)}})
            route = plan(settings, base).routes[0]
            bench_mode(info, route, mode, a.n)
        if a.cli:
            import yaml

            settings_doc = {"probe": {"routes": {modes[0]: route_settings(info, modes[0])}}}
            (base / "mailctl.yaml").write_text(yaml.safe_dump(settings_doc))
            bench_cli(base, a.cli)
    finally:
        sandbox.down(purge=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
