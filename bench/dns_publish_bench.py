"""Publishing 100 domains' mail records: `mailctl dns` vs `octodns-sync`, in one run.

Usage: python bench/dns_publish_bench.py [--domains 100] [--repeat 3]

Starts the test lab's Knot (tests/fixtures/dnsserver.py) with N empty zones
that take TSIG-signed RFC 2136 updates. mailctl publishes them from a
mailctl.yaml (hosted at Migadu, relaying through Mailgun: 13 record sets per
domain); octoDNS is driven the way its users drive it: its CLI `octodns-sync`
with a hand-written config and one YAML file per zone holding the same
records. Every run starts from empty zones. Timed, process start included:

  - apply (creates every record): `mailctl dns apply --yes --wait 0` vs
    `octodns-sync --doit`
  - the no-change plan afterwards: `mailctl dns plan` vs `octodns-sync` (dry run);
    mailctl's first one reads every zone, a repeated one finds each zone's SOA
    serial unchanged since that clean plan (mailctl.dns.plancache) and reads none

Bars (issue 11): the no-change plan of 100 domains under 1 s, and apply within
1.5x of plain octoDNS.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.dns.conftest import KEY_2048  # noqa: E402
from tests.fixtures.dnsserver import DnsLab  # noqa: E402

BIN = Path(sys.executable).parent


def mailctl_config(lab: DnsLab, domains: list[str]) -> str:
    lines = [
        "providers:",
        '  hosted: {type: migadu, user: admin@example.test, api_key: "${env:MIGADU_KEY}"}',
        "dns:",
        "  hosts:",
        "    knot:",
        "      class: octodns_bind.Rfc2136Provider",
        "      host: 127.0.0.1",
        f"      port: {lab.auth_port}",
        f"      key_name: {lab.tsig_name}",
        '      key_secret: "${env:TSIG_SECRET}"',
        "      key_algorithm: hmac-sha256",
        "  zones:",
        *(f"    {d}: knot" for d in domains),
        "domains:",
    ]
    for d in domains:
        lines += [f"  {d}:", "    provider: hosted", "    dns:",
                  "      params: {verify: abc}", "      relays: [mailgun]",
                  f'      relay_params: {{mailgun: {{dkim_key: "{KEY_2048}"}}}}']
    return "\n".join(lines) + "\n"


def octodns_zone(domain: str) -> dict[str, Any]:
    """The same 13 record sets, written out by hand as an octoDNS user would."""
    srv = {"_autodiscover._tcp": (443, "autodiscover"), "_imaps._tcp": (993, "imap"),
           "_pop3s._tcp": (995, "pop"), "_submissions._tcp": (465, "smtp")}
    zone: dict[str, Any] = {
        "": [{"type": "MX", "ttl": 3600, "values": [
                {"preference": 10, "exchange": "aspmx1.migadu.com."},
                {"preference": 20, "exchange": "aspmx2.migadu.com."}]},
             {"type": "TXT", "ttl": 3600, "values": [
                 "hosted-email-verify=abc",
                 "v=spf1 include:spf.migadu.com include:mailgun.org -all"]}],
        "_dmarc": {"type": "TXT", "ttl": 3600, "value": "v=DMARC1\\; p=quarantine"},
        "autoconfig": {"type": "CNAME", "ttl": 3600, "value": "autoconfig.migadu.com."},
        "smtp._domainkey": {"type": "TXT", "ttl": 3600, "value": f"k=rsa\\; p={KEY_2048}"},
    }
    for name, (port, host) in srv.items():
        zone[name] = {"type": "SRV", "ttl": 3600, "value": {
            "priority": 0, "weight": 1, "port": port, "target": f"{host}.migadu.com."}}
    for i in (1, 2, 3):
        zone[f"key{i}._domainkey"] = {"type": "CNAME", "ttl": 3600,
                                      "value": f"key{i}.{domain}._domainkey.migadu.com."}
    return zone


def octodns_config(lab: DnsLab, domains: list[str], directory: Path) -> Path:
    from octodns.yaml import safe_dump

    (directory / "zones").mkdir()
    for d in domains:
        buffer = io.StringIO()
        safe_dump(octodns_zone(d), buffer)
        (directory / "zones" / f"{d}.yaml").write_text(buffer.getvalue())
    zones = "\n".join(f"  {d}.:\n    sources: [config]\n    targets: [knot]" for d in domains)
    path = directory / "octodns.yaml"
    path.write_text(f"""\
providers:
  config:
    class: octodns.provider.yaml.YamlProvider
    directory: {directory / 'zones'}
    default_ttl: 3600
    enforce_order: true
  knot:
    class: octodns_bind.Rfc2136Provider
    host: 127.0.0.1
    port: {lab.auth_port}
    key_name: {lab.tsig_name}
    key_secret: env/TSIG_SECRET
    key_algorithm: hmac-sha256
zones:
{zones}
""")
    return path


def timed(cmd: list[str], cwd: Path, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - start
    if proc.returncode not in ok:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return took


def reset(lab: DnsLab, domains: list[str]) -> None:
    for d in domains:
        lab.publish(d, "www A 192.0.2.80", updatable=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    domains = [f"pb{i:03d}.test" for i in range(args.domains)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lab = DnsLab(work / "lab")
        lab.start()
        try:
            # Both tools as installed packages run: with bytecode caching (this
            # environment may set PYTHONDONTWRITEBYTECODE, recompiling every module).
            env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
            env.update({"TSIG_SECRET": lab.tsig_secret, "MIGADU_KEY": "k" * 16, "NO_COLOR": "1",
                        "PYTHONPATH": str(ROOT / "src"),
                        "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir())
                                                   / "mailctl-bench-pycache")})
            (work / "mailctl.yaml").write_text(mailctl_config(lab, domains))
            octo = octodns_config(lab, domains, work)
            mailctl = [str(BIN / "mailctl")]
            reset(lab, domains)
            timed([*mailctl, "dns", "plan"], work, env)  # warm both bytecode caches (dry)
            timed([str(BIN / "octodns-sync"), "--config-file", str(octo)], work, env)
            results: dict[str, list[float]] = {k: [] for k in (
                "mailctl apply", "octodns-sync --doit", "mailctl plan (no change)",
                "mailctl plan (no change, repeated)", "octodns-sync dry run (no change)")}
            loads = [os.getloadavg()[0]]
            for _ in range(args.repeat):
                reset(lab, domains)
                results["mailctl apply"].append(timed(
                    [*mailctl, "dns", "apply", "--yes", "--wait", "0"], work, env))
                results["mailctl plan (no change)"].append(timed(
                    [*mailctl, "dns", "plan", "--detailed-exitcode"], work, env))
                results["mailctl plan (no change, repeated)"].append(timed(
                    [*mailctl, "dns", "plan", "--detailed-exitcode"], work, env))
                reset(lab, domains)
                results["octodns-sync --doit"].append(timed(
                    [str(BIN / "octodns-sync"), "--config-file", str(octo), "--doit"], work, env))
                results["octodns-sync dry run (no change)"].append(timed(
                    [str(BIN / "octodns-sync"), "--config-file", str(octo)], work, env))
                # both end in the same zone: mailctl's re-plan of octoDNS's work is clean
                timed([*mailctl, "dns", "plan", "--detailed-exitcode"], work, env)
                loads.append(os.getloadavg()[0])
        finally:
            lab.stop()
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"# {args.domains} domains, 13 record sets each, median of {args.repeat} "
          f"({platform.python_version()}, {os.cpu_count()} CPUs, load average "
          f"{min(loads):.1f}-{max(loads):.1f})")
    for name, value in med.items():
        print(f"{name:36s} {value:7.2f} s   (runs: {', '.join(f'{v:.2f}' for v in results[name])})")
    ratio = med["mailctl apply"] / med["octodns-sync --doit"]
    print(f"apply ratio mailctl/octodns-sync: {ratio:.2f}x (bar: <= 1.5x)")
    print(f"no-change plan: {med['mailctl plan (no change)']:.2f} s reading every zone, "
          f"{med['mailctl plan (no change, repeated)']:.2f} s repeated (bar: < 1 s)")


if __name__ == "__main__":
    main()
