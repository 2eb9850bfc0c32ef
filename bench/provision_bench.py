"""Plan and apply 10,000 mailboxes over 20 domains with the dms provider, against
docker-mailserver's own per-account procedure, on this machine, in one run.

The peer is what `setup email add ADDR PW` does inside the container, per
account: a fresh process that takes a lock, checks the accounts and virtual
files with grep, hashes with `doveadm pw -s SHA512-CRYPT`, and appends the line
(target/scripts/helpers/database/*.sh). `bench/dms_setup_email_add.sh` does
exactly those steps with the real `doveadm`, minus `docker exec` (which would
only make the peer slower).

    python bench/provision_bench.py [--mailboxes 10000] [--domains 20] [--peer-sample 1000]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def write_config(directory: Path, mailboxes: int, domains: int) -> Path:
    per = mailboxes // domains
    out = ["providers:", "  bench: {type: dms, path: ./dms}", "domains:"]
    for d in range(domains):
        out += [f"  d{d:02}.bench.test:", "    provider: bench", "    quota: 1G", "    mailboxes:"]
        out += [f"      - local_part: user{i:05}" for i in range(per)]
        out += ["    aliases:"]
        out += [f"      - local_part: team{i:03}\n        destinations: [user{i:05}, "
                f"user{i + 1:05}]" for i in range(0, min(per - 1, 100))]
    path = directory / "mailctl.yaml"
    path.write_text("\n".join(out) + "\n")
    (directory / "dms").mkdir()
    return path


# Like an installed package: bytecode cached (this environment may set
# PYTHONDONTWRITEBYTECODE, which would recompile every module on every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "mailctl-bench-pycache")


def mailctl(*args: str, cwd: Path) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mailctl", *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode not in (0, 2):
        sys.exit(f"mailctl {' '.join(args)} failed:\n{proc.stderr}")
    return elapsed


def peer_loop(n: int, work: Path) -> float:
    if not shutil.which("doveadm"):
        sys.exit("doveadm not found: install dovecot-core (make deps)")
    dms = work / "peer"
    dms.mkdir()
    script = HERE / "dms_setup_email_add.sh"
    t = time.perf_counter()
    for i in range(n):
        subprocess.run(["bash", str(script), str(dms), f"user{i:05}@peer.bench.test",
                        f"pw-{i:05}-not-secret"], check=True)
    elapsed = time.perf_counter() - t
    lines = (dms / "postfix-accounts.cf").read_text().splitlines()
    assert len(lines) == n, len(lines)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mailboxes", type=int, default=10_000)
    ap.add_argument("--domains", type=int, default=20)
    ap.add_argument("--peer-sample", type=int, default=1000,
                    help="accounts the per-account peer loop creates (its rate is per account)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="mailctl-bench-") as tmp:
        work = Path(tmp)
        write_config(work, args.mailboxes, args.domains)
        mailctl("validate", cwd=work)  # warms the bytecode cache
        plan_create = mailctl("plan", cwd=work)
        apply_s = mailctl("apply", "--secrets-out", str(work / "pw.tsv"), cwd=work)
        n_accounts = len((work / "dms" / "postfix-accounts.cf").read_text().splitlines())
        assert n_accounts == args.mailboxes, n_accounts
        noop = [mailctl("plan", "--detailed-exitcode", cwd=work) for _ in range(args.repeat)]
        noop_apply = mailctl("apply", cwd=work)
        peer_s = peer_loop(args.peer_sample, work)

    ours_per = apply_s / args.mailboxes
    peer_per = peer_s / args.peer_sample
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}")
    print(f"{args.mailboxes} mailboxes over {args.domains} domains, dms provider")
    print(f"  plan (all to create), process included : {plan_create:8.3f} s")
    print(f"  apply (create all), process included   : {apply_s:8.3f} s "
          f"= {ours_per * 1000:.3f} ms/mailbox")
    print(f"  no-change plan, median of {args.repeat}            : "
          f"{statistics.median(noop):8.3f} s (max {max(noop):.3f} s; bar < 1 s)")
    print(f"  no-change apply                        : {noop_apply:8.3f} s")
    print(f"peer: docker-mailserver `setup email add` procedure, {args.peer_sample} accounts")
    print(f"  per-account loop                       : {peer_s:8.3f} s "
          f"= {peer_per * 1000:.3f} ms/mailbox")
    print(f"  projected for {args.mailboxes}                   : "
          f"{peer_per * args.mailboxes:8.1f} s")
    print(f"ratio: mailctl apply is {peer_per / ours_per:.1f}x faster per mailbox (bar: 20x)")


if __name__ == "__main__":
    main()
