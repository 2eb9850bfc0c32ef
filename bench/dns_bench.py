"""mailctl's DNS check vs checkdmarc, on the same local zones through the same Unbound.

Usage: python bench/dns_bench.py [--repeat N]

Starts the test lab (Knot + Unbound on loopback, tests/fixtures/dnsserver.py),
publishes fixture domains on two nameservers (a primary and an in-sync
secondary, except `stalens`, whose secondary lags), then times both tools
in-process with cold caches: per domain for one domain at a time and for 100
domains in one call, mailctl with its defaults and with `--ns-check` (each
nameserver asked directly). It counts the queries Unbound received (plus mailctl's direct queries to
the nameservers) and compares what each tool reports per fixture. checkdmarc
runs from its own venv (/tmp/venv-checkdmarc, created if missing) so its
dependencies never touch mailctl's; its process gets bytecode caching like an
installed package even where PYTHONDONTWRITEBYTECODE is set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.dns.conftest import KEY_1024, WORLD, migadu_zone, txt  # noqa: E402
from tests.fixtures.dnsserver import DnsLab  # noqa: E402

from mailctl.dns.check import check_domains  # noqa: E402
from mailctl.dns.findings import Severity  # noqa: E402
from mailctl.dns.records import DomainDnsSpec  # noqa: E402

VENV = Path("/tmp/venv-checkdmarc")
CHECKDMARC = "checkdmarc==6.0.4"  # pinned: 6.0 changed many verdicts

FIXTURES: dict[str, dict[str, str | None]] = {
    "good": {},
    "drift": {"spf": '@ TXT "v=spf1 include:spf.migadu.com include:spf.sendinblue.com -all"'},
    "multispf": {"extra": '@ TXT "v=spf1 include:_spf.oldrelay.test ~all"'},
    "nullmx": {"mx1": "@ MX 0 .", "mx2": None},
    "mxcname": {"mx2": "@ MX 20 mx.{d}.", "extra": "mx CNAME aspmx1.migadu.com."},
    "loop": {"spf": '@ TXT "v=spf1 include:spf.migadu.com include:a.{d} -all"',
             "extra": 'a TXT "v=spf1 include:b.{d} -all"\nb TXT "v=spf1 include:a.{d} -all"'},
    "voids": {"spf": '@ TXT "v=spf1 include:spf.migadu.com a:x1.{d} a:x2.{d} a:x3.{d} -all"'},
    "nokey": {"key3": None, "key2": None},
    "weakkey": {"key1": "key1._domainkey TXT " + txt("v=DKIM1; k=rsa; p=" + KEY_1024)},
    "dmarcext": {"dmarc": '_dmarc TXT "v=DMARC1; p=none; rua=mailto:r@noauth.test"'},
    "stalens": {},  # the secondary still serves last week's MX (see STALE)
}
STALE = {"mx1": "@ MX 10 mx.oldhost.test.", "mx2": None}
BOTH_NS = ("ns1.lab.test", "ns2.lab.test")
# Like an installed package: bytecode cached (this environment may set
# PYTHONDONTWRITEBYTECODE, which would recompile every module on every run).
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
ENV["PYTHONPYCACHEPREFIX"] = os.path.join(tempfile.gettempdir(), "mailctl-bench-pycache")

WORKER = r"""
import json, sys, time
import dns.nameserver, checkdmarc, checkdmarc.utils, checkdmarc.dnssec
ns = [dns.nameserver.Do53Nameserver("127.0.0.1", port=int(sys.argv[1]))]
def cold():
    for mod in (checkdmarc.utils, checkdmarc.dnssec):
        for name in dir(mod):
            if name.endswith("_CACHE"):
                getattr(mod, name).clear()
def problems(res):
    out = []
    for key, part in res.items():
        if isinstance(part, dict):
            if part.get("error"):
                out.append(f"{key}: {part['error']}")
            out += [f"{key} (warning): {w}" for w in part.get("warnings", [])]
    return out
for line in sys.stdin:  # one request per line, so the bench can interleave the two tools
    domains = json.loads(line)
    cold(); t = time.perf_counter()
    res = checkdmarc.check_domains(domains, nameservers=ns, timeout=2.0)
    elapsed = time.perf_counter() - t
    found = problems(res) if len(domains) == 1 else []
    print(json.dumps({"t": elapsed, "found": found}), flush=True)
"""


class Checkdmarc:
    """checkdmarc in its own long-lived process, timed on request."""

    def __init__(self, python: Path, port: int) -> None:
        self.proc = subprocess.Popen([str(python), "-c", WORKER, str(port)], env=ENV, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def check(self, domains: list[str]) -> tuple[float, list[str]]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(domains) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        return float(reply["t"]), list(reply["found"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)



def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(python), "-c", "import checkdmarc"], capture_output=True,
                      env=ENV).returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", CHECKDMARC], check=True)
    return python


def spec(domain: str) -> DomainDnsSpec:
    return DomainDnsSpec(domain, profile="migadu", params={"verify": "abc"})


async def one(lab: DnsLab, domains: list[str], ns_check: bool) -> float:
    t = time.perf_counter()
    await check_domains([spec(d) for d in domains], lab.resolver, ns_check=ns_check,
                        ns_port=lab.auth_port)
    return time.perf_counter() - t


def interleaved(lab: DnsLab, cd: Checkdmarc, names: list[str], reps: int
                ) -> dict[str, dict[str, float]]:
    """Median seconds per fixture for each tool; the tools take turns on every domain
    and repetition, so a load spike from elsewhere hits all of them alike."""
    times: dict[str, dict[str, list[float]]] = {k: {d: [] for d in names}
                                                 for k in ("mailctl", "ns", "checkdmarc")}
    for _ in range(reps):
        for d in names:
            times["mailctl"][d].append(asyncio.run(one(lab, [d], False)))
            times["ns"][d].append(asyncio.run(one(lab, [d], True)))
            times["checkdmarc"][d].append(cd.check([d])[0])
    return {k: {d: statistics.median(v) for d, v in per.items()} for k, per in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    python = ensure_venv()
    lab = DnsLab(Path(tempfile.mkdtemp(prefix="dnsbench")))
    lab.start()
    try:
        for zone, records in WORLD.items():
            lab.publish(zone, records)
        names = []
        for name, change in FIXTURES.items():
            d = f"{name}.bench.test"
            zone = migadu_zone(d, **{k: v.replace("{d}", d) if v else v
                                     for k, v in change.items()})
            lab.publish(d, zone, nameservers=BOTH_NS)
            if name == "stalens":
                lab.publish_secondary(d, migadu_zone(d, **STALE), serial=lab.zones[d] - 1)
            else:
                lab.publish_secondary(d, zone)
            names.append(d)
        batch = [f"d{i:03d}.bench.test" for i in range(args.batch)]
        for d in batch:
            lab.publish(d, migadu_zone(d), nameservers=BOTH_NS)
            lab.publish_secondary(d, migadu_zone(d))
        run(lab, python, names, batch, args.repeat)
    finally:
        lab.stop()


def run(lab: DnsLab, python: Path, names: list[str], batch: list[str], reps: int) -> None:
    # queries per domain (one cold run each, counted by Unbound)
    lab.queries_answered()
    asyncio.run(check_domains([spec(d) for d in names], lab.resolver))
    q_mailctl = lab.queries_answered() / len(names)
    reports = asyncio.run(check_domains([spec(d) for d in names], lab.resolver,
                                        ns_check=True, ns_port=lab.auth_port))
    q_ns = lab.queries_answered() / len(names)
    q_direct = sum(r.queries for r in reports) / len(names) - q_ns
    cd = Checkdmarc(python, lab.resolver_port)
    try:
        found_cd = {d: cd.check([d])[1] for d in names}
        q_checkdmarc = lab.queries_answered() / len(names)
        med = interleaved(lab, cd, names, reps)
        single_m, single_n, single_c = med["mailctl"], med["ns"], med["checkdmarc"]
        batch_m = asyncio.run(one(lab, batch, False))
        batch_c = cd.check(batch)[0]
        batch_n = asyncio.run(one(lab, batch, True))
    finally:
        cd.close()
    med_m = statistics.median(single_m.values()) * 1000
    med_n = statistics.median(single_n.values()) * 1000
    med_c = statistics.median(single_c.values()) * 1000
    per_m, per_n = batch_m / len(batch) * 1000, batch_n / len(batch) * 1000
    per_c = batch_c / len(batch) * 1000
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
          f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f} "
          f"{time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(f"{'':28s} {'mailctl':>10s} {'--ns-check':>11s} {'checkdmarc':>11s} "
          f"{'ratio':>7s} {'ratio ns':>9s}")
    print(f"{'1 domain, median ms':28s} {med_m:10.1f} {med_n:11.1f} {med_c:11.1f} "
          f"{med_c / med_m:6.1f}x {med_c / med_n:8.1f}x")
    print(f"{f'{len(batch)} domains, ms per domain':28s} {per_m:10.2f} {per_n:11.2f} "
          f"{per_c:11.2f} {per_c / per_m:6.1f}x {per_c / per_n:8.1f}x")
    print(f"{'queries per domain':28s} {q_mailctl:10.1f} {q_ns:11.1f} {q_checkdmarc:11.1f}"
          f"   (--ns-check: +{q_direct:.1f} direct to the nameservers)")
    print("\nfindings per fixture (errors+warnings, mailctl with --ns-check; "
          "checkdmarc: errors+warnings)")
    for d, report in zip(names, reports, strict=True):
        ours = sorted({f.code for f in report.findings
                       if f.severity in (Severity.ERROR, Severity.WARNING)})
        print(f"  {d:24s} mailctl {len(ours):2d}: {', '.join(ours) or '-'}")
        theirs = found_cd.get(d, [])
        print(f"  {'':24s} checkdmarc {len(theirs):2d}: "
              + ("; ".join(x[:70] for x in theirs) or "-"))
    for d in names:
        print(f"  {d:24s} {single_m[d] * 1000:7.1f} ms vs {single_c[d] * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
