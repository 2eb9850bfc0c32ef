"""Plan and apply 1,000 mailboxes + 1,000 aliases over 5 domains on the mailcow and
Migadu emulators (50 ms per request), against a sequential one-call-per-object
client — what a typical provisioning script does: GET each object to see whether
it exists, then POST it — in one run.

mailctl runs as a user runs it (`mailctl plan`, `mailctl apply`, `mailctl plan`,
each a fresh process). Bars (issue 3): mailcow ≥ 5× the sequential client;
Migadu never trips its limit and finishes within 10 % of the least time the
limit allows; a no-change plan costs one list call per domain and object type.

Migadu's limit (60 requests / 120 s) would make one run take over an hour, so
by default its window is time-compressed to 2.4 s (60 / 2.4 s, 50×): the
ratio to the least time is what the bar is about and it does not depend on
the scale. `--migadu-window 120` runs it in real time.

    python bench/providers_bench.py [--per-domain 200] [--domains 5] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.emulators.base import Emulator  # noqa: E402
from tests.emulators.mailcow import MailcowEmulator  # noqa: E402
from tests.emulators.migadu import MigaduEmulator  # noqa: E402

KEY = "bench-key-0123456789"
USER = "admin@bench.test"


@dataclass
class Run:
    seconds: float
    calls: int


def domains(n: int) -> list[str]:
    return [f"d{i}.bench.test" for i in range(n)]


def write_config(work: Path, provider: str, per: int, n: int) -> None:
    out = ["providers:", f"  p:\n    type: {provider}\n    url: {{url}}",
           "    api_key: ${env:BENCH_KEY}"]
    if provider == "mailcow":
        out.append("    new_domain: {mailboxes: 100000, aliases: 100000, quota: 10240000, "
                   "defquota: 1024}")
    else:
        out.append(f"    user: {USER}\n    rate_limit: {{requests: 60, per_seconds: {{window}}}}")
    out.append("domains:")
    for d in domains(n):
        out += [f"  {d}:", "    provider: p", "    mailboxes:"]
        out += [f"      - local_part: user{i:04}" for i in range(per)]
        out += ["    aliases:"]
        out += [f"      - {{local_part: team{i:04}, destinations: [user{i:04}]}}"
                for i in range(per)]
    (work / "template.yaml").write_text("\n".join(out) + "\n")


def mailctl(work: Path, emu: Emulator, *args: str) -> Run:
    emu.reset_log()
    env = {**os.environ, "BENCH_KEY": KEY, "XDG_CACHE_HOME": str(work / "cache"),
           "NO_COLOR": "1"}
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mailctl", *args], cwd=work, env=env,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode not in (0, 2):
        sys.exit(f"mailctl {' '.join(args)} failed ({proc.returncode}):\n"
                 f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return Run(elapsed, emu.calls())


def sequential(client: httpx.Client, emu: Emulator, requests: list[tuple[str, str, object]]
               ) -> Run:
    """One call per object, one after the other."""
    emu.reset_log()
    t = time.perf_counter()
    for method, path, body in requests:
        client.request(method, path, json=body)
    return Run(time.perf_counter() - t, emu.calls())


def bench_mailcow(work: Path, per: int, n: int, latency: float) -> dict[str, Run]:
    runs: dict[str, Run] = {}
    with MailcowEmulator(KEY, latency=latency) as emu:
        write_config(work, "mailcow", per, n)
        text = (work / "template.yaml").read_text().replace("{url}", emu.url)
        (work / "mailctl.yaml").write_text(text)
        runs["plan"] = mailctl(work, emu, "plan")
        runs["apply"] = mailctl(work, emu, "apply", "--secrets-out", "secrets.txt")
        runs["noop"] = mailctl(work, emu, "plan", "--detailed-exitcode")
        assert len(emu.mailboxes) == per * n, len(emu.mailboxes)
    with MailcowEmulator(KEY, latency=latency) as emu, httpx.Client(
            base_url=emu.url + "/", headers={"X-API-Key": KEY}) as client:
        reads: list[tuple[str, str, object]] = []
        writes: list[tuple[str, str, object]] = []
        for d in domains(n):
            reads.append(("GET", f"get/domain/{d}", None))
            writes.append(("POST", "add/domain", {"domain": d, "mailboxes": 100000,
                                                  "aliases": 100000, "quota": 10240000,
                                                  "defquota": 1024}))
            for i in range(per):
                reads.append(("GET", f"get/mailbox/user{i:04}@{d}", None))
                writes.append(("POST", "add/mailbox", {
                    "local_part": f"user{i:04}", "domain": d, "active": "1",
                    "password": "x" * 32, "password2": "x" * 32}))
            for i in range(per):
                reads.append(("GET", f"get/alias/team{i:04}@{d}", None))
                writes.append(("POST", "add/alias", {"address": f"team{i:04}@{d}",
                                                     "goto": f"user{i:04}@{d}", "active": "1"}))
        runs["seq_plan"] = sequential(client, emu, reads)
        runs["seq_apply"] = sequential(client, emu, writes)
        assert len(emu.mailboxes) == per * n
    return runs


def bench_migadu(work: Path, per: int, n: int, latency: float, window: float,
                 sample: int) -> tuple[dict[str, Run], int, int, float]:
    runs: dict[str, Run] = {}
    with MigaduEmulator(USER, KEY, limit=60, window=window, latency=latency) as emu:
        for d in domains(n):
            emu.add_domain(d)
        write_config(work, "migadu", per, n)
        text = (work / "template.yaml").read_text().replace("{url}", emu.url)
        (work / "mailctl.yaml").write_text(text.replace("{window}", str(window)))
        runs["plan"] = mailctl(work, emu, "plan")
        runs["apply"] = mailctl(work, emu, "apply", "--secrets-out", "secrets.txt")
        runs["noop"] = mailctl(work, emu, "plan", "--detailed-exitcode")
        trips = emu.trips
        assert len(emu.mailboxes) == per * n and len(emu.aliases) == per * n
        calls = runs["plan"].calls + runs["apply"].calls
        # The k-th request (from 0) cannot arrive before floor(k / 60) windows have passed.
        least = (math.ceil(calls / 60) - 1) * window + latency
    # A sequential script with no limiter, on a fresh account, in real time (the
    # 120 s window): how soon it is refused.
    with MigaduEmulator(USER, KEY, limit=60, window=120.0, latency=latency) as emu, \
            httpx.Client(base_url=emu.url + "/", auth=(USER, KEY)) as client:
        emu.add_domain("d0.bench.test")
        reqs: list[tuple[str, str, object]] = [
            ("POST", "domains/d0.bench.test/mailboxes",
             {"local_part": f"user{i:04}", "name": "x", "password": "x" * 32})
            for i in range(sample)]
        runs["seq_sample"] = sequential(client, emu, reqs)
        seq_trips = emu.trips
    return runs, trips, seq_trips, least


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--per-domain", type=int, default=200, help="mailboxes (and aliases)")
    ap.add_argument("--domains", type=int, default=5)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--migadu-window", type=float, default=2.4)
    ap.add_argument("--migadu-sample", type=int, default=200,
                    help="objects the unlimited sequential Migadu script sends")
    args = ap.parse_args()
    per, n, lat = args.per_domain, args.domains, args.latency
    objs = 2 * per * n
    print(f"{per * n} mailboxes + {per * n} aliases over {n} domains, "
          f"{lat * 1000:.0f} ms per request, {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory(prefix="mailctl-pbench-") as tmp:
        work = Path(tmp) / "mailcow"
        work.mkdir()
        cow = bench_mailcow(work, per, n, lat)
        seq = cow["seq_plan"].seconds + cow["seq_apply"].seconds
        ours = cow["plan"].seconds + cow["apply"].seconds
        print("\nmailcow (no rate limit)")
        print(f"  {'':28}{'calls':>8}{'seconds':>10}")
        for label, key in (("mailctl plan", "plan"), ("mailctl apply (plans first)", "apply"),
                           ("mailctl plan, no change", "noop"),
                           ("sequential: GET per object", "seq_plan"),
                           ("sequential: POST per object", "seq_apply")):
            print(f"  {label:28}{cow[key].calls:>8}{cow[key].seconds:>10.2f}")
        print(f"  plan speed-up   {cow['seq_plan'].seconds / cow['plan'].seconds:6.1f}x")
        print(f"  apply speed-up  {cow['seq_apply'].seconds / cow['apply'].seconds:6.1f}x")
        print(f"  plan + apply    {seq / ours:6.1f}x  (bar: >= 5x)")
        print(f"  no-change plan: {cow['noop'].calls} calls = 1 domain list + "
              f"{n} domains x 2 object types: {cow['noop'].calls == 1 + 2 * n}")

        work = Path(tmp) / "migadu"
        work.mkdir()
        w = args.migadu_window
        mig, trips, seq_trips, least = bench_migadu(work, per, n, lat, w, args.migadu_sample)
        total = mig["plan"].seconds + mig["apply"].seconds
        print(f"\nMigadu (limit 60 requests / {w:g} s"
              + ("" if w == 120 else f", Migadu's 60 / 120 s compressed {120 / w:g}x") + ")")
        print(f"  {'':28}{'calls':>8}{'seconds':>10}")
        for label, key in (("mailctl plan", "plan"), ("mailctl apply (plans first)", "apply"),
                           ("mailctl plan, no change", "noop")):
            print(f"  {label:28}{mig[key].calls:>8}{mig[key].seconds:>10.2f}")
        print(f"  limit tripped (403s):       {trips}")
        print(f"  least time the limit allows: {least:.2f} s for "
              f"{mig['plan'].calls + mig['apply'].calls} calls; mailctl took {total:.2f} s "
              f"= {100 * (total / least - 1):+.1f} % (bar: <= +10 %)")
        if w != 120:
            # The overhead (process start-up, one latency per window) does not grow
            # with the window; only the waiting does.
            real = least * 120 / w
            print(f"  in real time: least {real / 60:.1f} min; the {total - least:.1f} s "
                  f"overhead measured here would be {100 * (total - least) / real:+.2f} %")
        s = mig["seq_sample"]
        print(f"  sequential script without a limiter (real 120 s window): {s.calls} POSTs "
              f"in {s.seconds:.2f} s, {seq_trips} refused with 403")
        # Mailboxes (identities and forwardings embedded), aliases, rewrites.
        print(f"  no-change plan: {mig['noop'].calls} calls = {n} domains x 3 object types: "
              f"{mig['noop'].calls == 3 * n}")
        print(f"\n{objs} objects per provider.")


if __name__ == "__main__":
    main()
