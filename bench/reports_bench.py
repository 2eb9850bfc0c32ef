"""parsedmarc vs mailctl: DMARC aggregate reports parsed (mailctl: and stored) per second.

The same 10,000 report files (tests/reports/gen.py: Google zip, Microsoft/Yahoo/Mail.ru
gzip, DMARCbis zip or gzip; 1-60 records each and every 50th with 2,000) are read
by parsedmarc's own parser (`parse_report_file(path, offline=True)`, in its own
virtualenv, one process) and imported by mailctl into a fresh SQLite store
(`reports import`'s library call, one process), in the same run. Per report, the
record count and the message total must be the same from both; peak RSS is each
process's own ru_maxrss. Both wall-clock and CPU time (user + system of each
process) are printed: on a shared machine the wall-clock ratio moves with other
load between the two runs, the CPU-time ratio much less.

    python bench/reports_bench.py [--n 10000] [--parsedmarc-python /tmp/parsedmarc-venv/bin/python]

parsedmarc needs a venv with `pip install parsedmarc==11.1.0` (made on first use).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PARSEDMARC = "parsedmarc==11.1.0"

PEER = r"""
import json, os, resource, sys, time, logging
logging.disable(logging.CRITICAL)
import parsedmarc
d = sys.argv[1]
files = sorted(os.listdir(d))
counts, failed = {}, 0
def cpu():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime
c0 = cpu()
t = time.perf_counter()
for f in files:
    try:
        r = parsedmarc.parse_report_file(os.path.join(d, f), offline=True)
    except Exception:
        failed += 1
        continue
    rep = r["report"]
    counts[rep["report_metadata"]["report_id"]] = [
        len(rep["records"]), sum(int(x["count"]) for x in rep["records"])]
el = time.perf_counter() - t
print(json.dumps({"seconds": el, "cpu": cpu() - c0,
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "failed": failed, "counts": counts}))
"""


def ours(d: Path) -> None:
    """Child: import every file of `d` into a fresh store, then report counts."""
    import resource

    from sqlalchemy import func, select

    from mailctl.reports import db
    from mailctl.reports.importer import import_files
    from mailctl.reports.store import ReportStore
    from mailctl.reports.unpack import Limits

    files = sorted(d.iterdir())
    work = Path(tempfile.mkdtemp(prefix="reports-bench-db-"))
    store = ReportStore(f"sqlite:///{work}/reports.db")
    def cpu() -> float:
        u = resource.getrusage(resource.RUSAGE_SELF)
        return u.ru_utime + u.ru_stime

    c0 = cpu()
    t = time.perf_counter()
    rows = import_files(store, files, Limits(), None)
    el = time.perf_counter() - t
    used = cpu() - c0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts: dict[str, list[int]] = {}
    with store.engine.connect() as c:
        q = (select(db.reports.c.report_id, func.count(db.records.c.n),
                    func.coalesce(func.sum(db.records.c.count), 0))
             .select_from(db.reports.outerjoin(db.records, db.records.c.report == db.reports.c.id))
             .group_by(db.reports.c.report_id))
        for rid, n, msgs in c.execute(q):
            counts[str(rid)] = [int(n), int(msgs)]
    store.close()
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"seconds": el, "cpu": used, "rss_kb": rss, "counts": counts,
                      "failed": sum(r["rejected"] for r in rows)}))


def ensure_parsedmarc(python: Path) -> bool:
    """The peer in its own virtualenv, from PyPI, made on first use."""
    if python.exists():
        return True
    venv = python.parent.parent
    print(f"creating {venv} with {PARSEDMARC} from PyPI ...", flush=True)
    made = subprocess.run([sys.executable, "-m", "venv", str(venv)]).returncode == 0
    made = made and subprocess.run([str(python), "-m", "pip", "install", "-q",
                                    PARSEDMARC]).returncode == 0
    return made and python.exists()


def generate(d: Path, n: int) -> tuple[int, int, int]:
    from tests.reports.gen import corpus

    size = recs = 0
    for name, data, nrec, _ in corpus(n, seed=20261204):
        (d / name).write_bytes(data)
        size += len(data)
        recs += nrec
    return n, size, recs


def run_child(cmd: list[str]) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=7200)
    if proc.returncode != 0:
        raise SystemExit(f"{cmd[0]} failed:\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000, help="reports")
    ap.add_argument("--parsedmarc-python", type=Path,
                    default=Path("/tmp/parsedmarc-venv/bin/python"))
    ap.add_argument("--child-ours", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.child_ours:
        ours(args.child_ours)
        return
    work = Path(tempfile.mkdtemp(prefix="reports-bench-"))
    try:
        n, size, recs = generate(work, args.n)
        print(f"{n} reports, {size / 1e6:.1f} MB compressed, {recs:,} records", flush=True)
        mine = run_child([sys.executable, __file__, "--child-ours", str(work)])
        print(f"mailctl: {float(mine['seconds']):.1f} s", flush=True)
        peer = None
        if ensure_parsedmarc(args.parsedmarc_python):
            script = work.parent / f"{work.name}-peer.py"
            script.write_text(PEER)
            try:
                peer = run_child([str(args.parsedmarc_python), str(script), str(work)])
            finally:
                script.unlink()
            print(f"parsedmarc: {float(peer['seconds']):.1f} s", flush=True)
        else:
            print("parsedmarc could not be installed; mailctl only", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\n{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}")
    rate = n / float(mine["seconds"])
    crate = n / float(mine["cpu"])
    print(f"{'tool':<12} {'wall s':>8} {'reports/s':>10} {'CPU s':>8} {'per CPU-s':>10} "
          f"{'peak RSS':>9} {'failed':>6}")
    print(f"{'mailctl':<12} {float(mine['seconds']):>8.1f} {rate:>10.1f} "
          f"{float(mine['cpu']):>8.1f} {crate:>10.1f} "
          f"{int(mine['rss_kb']) / 1024:>7.0f}MB {mine['failed']:>6}")
    figures: dict[str, object] = {"n": n, "mailctl_rate": rate, "mailctl_cpu_rate": crate,
                                  "mailctl_rss_mb": int(mine["rss_kb"]) / 1024}
    if peer is not None:
        prate = n / float(peer["seconds"])
        pcrate = n / float(peer["cpu"])
        print(f"{'parsedmarc':<12} {float(peer['seconds']):>8.1f} {prate:>10.1f} "
              f"{float(peer['cpu']):>8.1f} {pcrate:>10.1f} "
              f"{int(peer['rss_kb']) / 1024:>7.0f}MB {peer['failed']:>6}")
        a, b = mine["counts"], peer["counts"]
        assert isinstance(a, dict) and isinstance(b, dict)
        same = sum(1 for k, v in a.items() if b.get(k) == v)
        print(f"\nsame records and messages per report: {same} of {n}"
              + ("" if same == n else " (MISMATCH)"))
        print(f"mailctl {rate / prate:.1f}x parsedmarc's reports/s wall-clock, "
              f"{crate / pcrate:.1f}x per CPU-second (bar >= 5x); peak RSS "
              f"{int(mine['rss_kb']) / 1024:.0f} MB (bar < 100 MB)")
        figures.update({"parsedmarc_rate": prate, "parsedmarc_cpu_rate": pcrate,
                        "ratio": rate / prate, "cpu_ratio": crate / pcrate, "same": same,
                        "parsedmarc_rss_mb": int(peer["rss_kb"]) / 1024})
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
