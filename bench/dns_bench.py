"""mailctl's DNS check vs checkdmarc, on the same local zones through the same Unbound.

Usage: python bench/dns_bench.py [--repeat N]

Starts the test lab (Knot + Unbound on loopback, tests/fixtures/dnsserver.py),
publishes fixture domains, then times both tools in-process with cold caches:
per domain for one domain at a time and for 100 domains in one call, counts
the queries Unbound received, and compares what each tool reports per fixture.
checkdmarc runs from its own venv (/tmp/venv-checkdmarc, created if missing) so
its dependencies never touch mailctl's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
}

WORKER = r"""
import json, sys, time
import dns.nameserver, checkdmarc, checkdmarc.utils, checkdmarc.dnssec
port, reps = int(sys.argv[1]), int(sys.argv[2])
domains, batch = json.loads(sys.argv[3]), json.loads(sys.argv[4])
ns = [dns.nameserver.Do53Nameserver("127.0.0.1", port=port)]
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
single, found = {}, {}
for d in domains:
    times = []
    for _ in range(reps):
        cold(); t = time.perf_counter()
        res = checkdmarc.check_domains([d], nameservers=ns, timeout=2.0)
        times.append(time.perf_counter() - t)
    single[d] = sorted(times)[len(times) // 2]
    found[d] = problems(res)
cold(); t = time.perf_counter()
checkdmarc.check_domains(batch, nameservers=ns, timeout=2.0)
print(json.dumps({"single": single, "found": found, "batch": time.perf_counter() - t}))
"""


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if subprocess.run([str(python), "-c", "import checkdmarc"], capture_output=True).returncode:
        subprocess.run([str(python), "-m", "pip", "install", "-q", CHECKDMARC], check=True)
    return python


def spec(domain: str) -> DomainDnsSpec:
    return DomainDnsSpec(domain, profile="migadu", params={"verify": "abc"})


async def mailctl_time(lab: DnsLab, domains: list[str], reps: int) -> dict[str, float]:
    out = {}
    for d in domains:
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            await check_domains([spec(d)], lab.resolver)
            times.append(time.perf_counter() - t)
        out[d] = sorted(times)[len(times) // 2]
    return out


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
            lab.publish(d, migadu_zone(d, **{k: v.replace("{d}", d) if v else v
                                             for k, v in change.items()}))
            names.append(d)
        batch = [f"d{i:03d}.bench.test" for i in range(args.batch)]
        for d in batch:
            lab.publish(d, migadu_zone(d))
        run(lab, python, names, batch, args.repeat)
    finally:
        lab.stop()


def run(lab: DnsLab, python: Path, names: list[str], batch: list[str], reps: int) -> None:
    # queries per domain (one cold run each, counted by Unbound)
    lab.queries_answered()
    reports = asyncio.run(check_domains([spec(d) for d in names], lab.resolver))
    q_mailctl = lab.queries_answered() / len(names)
    proc = subprocess.run([str(python), "-c", WORKER, str(lab.resolver_port), "1",
                           json.dumps(names), "[]"], capture_output=True, text=True, check=True)
    q_checkdmarc = lab.queries_answered() / len(names)
    found_cd = json.loads(proc.stdout)["found"]
    # timing
    single_m = asyncio.run(mailctl_time(lab, names, reps))
    t = time.perf_counter()
    asyncio.run(check_domains([spec(d) for d in batch], lab.resolver))
    batch_m = time.perf_counter() - t
    proc = subprocess.run([str(python), "-c", WORKER, str(lab.resolver_port), str(reps),
                           json.dumps(names), json.dumps(batch)],
                          capture_output=True, text=True, check=True)
    cd = json.loads(proc.stdout)
    med_m = statistics.median(single_m.values()) * 1000
    med_c = statistics.median(cd["single"].values()) * 1000
    per_m, per_c = batch_m / len(batch) * 1000, cd["batch"] / len(batch) * 1000
    print(f"{'':28s} {'mailctl':>10s} {'checkdmarc':>11s} {'ratio':>7s}")
    print(f"{'1 domain, median ms':28s} {med_m:10.1f} {med_c:11.1f} {med_c / med_m:6.1f}x")
    print(f"{f'{len(batch)} domains, ms per domain':28s} {per_m:10.2f} {per_c:11.2f} "
          f"{per_c / per_m:6.1f}x")
    print(f"{'queries per domain':28s} {q_mailctl:10.1f} {q_checkdmarc:11.1f}")
    print("\nfindings per fixture (errors+warnings; checkdmarc: errors+warnings)")
    for d, report in zip(names, reports, strict=True):
        ours = sorted({f.code for f in report.findings
                       if f.severity in (Severity.ERROR, Severity.WARNING)})
        print(f"  {d:24s} mailctl {len(ours):2d}: {', '.join(ours) or '-'}")
        theirs = found_cd.get(d, [])
        print(f"  {'':24s} checkdmarc {len(theirs):2d}: "
              + ("; ".join(x[:70] for x in theirs) or "-"))
    for d in names:
        single_c = cd["single"][d] * 1000
        print(f"  {d:24s} {single_m[d] * 1000:7.1f} ms vs {single_c:7.1f} ms")


if __name__ == "__main__":
    main()
