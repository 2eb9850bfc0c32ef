"""Mail copy jobs on the PostgreSQL queue vs one-host `mailctl migrate --jobs N`, same run.

    python bench/jobs_bench.py                      # the full size: 2,000 accounts x 50
    python bench/jobs_bench.py --accounts 200 --messages 20 --parallel 4   # a smaller run

Two sandboxes (source and target Dovecot) and a throwaway PostgreSQL from the
shared test fixtures. The source accounts are filled once; each run copies them
into its own fresh set of target accounts:

  migrate   `mailctl migrate --accounts CSV --jobs P` (one host, a process per account)
  queue x1  one `mailctl worker --concurrency P`
  queue x2  two workers, --concurrency P/2 each
  queue x4  four workers, --concurrency P/4 each

Every configuration runs P copies at once, so the ratios are the queue's own
cost. Workers run with --until-empty; a run's wall time is from the submit to
the last worker's exit. CPU is the client side (the bench's children: migrate's
processes or the workers), from getrusage. After each run every target's
message count is compared with its source's (nothing lost, nothing twice) and
the queue must hold one succeeded job per account.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _count(info: object, user: str, pw: str) -> int:
    import imaplib

    c = imaplib.IMAP4(info.host, info.ports.imap)  # type: ignore[attr-defined]
    try:
        c.login(user, pw)
        _, lines = c.list()
        n = 0
        for raw in lines:
            assert isinstance(raw, bytes)
            name = raw.rsplit(b' "." ', 1)[1].strip(b'"').decode()
            _, st = c.status(f'"{name}"', "(MESSAGES)")
            n += int(st[0].split(b"MESSAGES ")[1].rstrip(b")"))
        return n
    finally:
        c.logout()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accounts", type=int, default=2000)
    ap.add_argument("--messages", type=int, default=50)
    ap.add_argument("--parallel", type=int, default=4, help="copies at once in every run")
    args = ap.parse_args()
    from tests.fixtures.mailstack import start_mailstack, stop_mailstack
    from tests.fixtures.postgres import start_postgres, stop_postgres
    from tests.sync.helpers import fill, message

    n, m, par = args.accounts, args.messages, args.parallel
    env = {**os.environ, "PYTHONPYCACHEPREFIX": "/tmp/mailctl-bench-pycache"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    tmp = Path(tempfile.mkdtemp(prefix="mailctl-jobs-bench-"))
    src, dst, pg = start_mailstack(), start_mailstack(), start_postgres()
    runs = ["migrate", "queue x1", "queue x2", "queue x4"]
    try:
        t0 = time.monotonic()
        users = [(f"u{i}@src.test", f"pw-s{i}") for i in range(n)]
        src.set(accounts=dict(users))
        dst.set(accounts={f"u{i}-r{r}@dst.test": f"pw-d{i}" for i in range(n)
                          for r in range(len(runs))})
        for i, (u, pw) in enumerate(users):
            fill(src.info, u, pw, {"INBOX": [(message(i * 1000 + j), "(\\Seen)",
                                              1_650_000_000 + j) for j in range(m)]})
        (tmp / "pw").mkdir()
        print(f"# {n} accounts x {m} messages filled in {time.monotonic() - t0:.0f} s; "
              f"{par} copies at once; load average {os.getloadavg()[0]:.1f}", flush=True)
        results = []
        for r, run in enumerate(runs):
            csv = tmp / f"accounts-{r}.csv"
            lines = ["src,dst,password1_file,password2_file"]
            for i, (u, pw) in enumerate(users):
                p1, p2 = tmp / "pw" / f"s{i}", tmp / "pw" / f"d{i}"
                p1.write_text(pw + "\n")
                p2.write_text(f"pw-d{i}\n")
                lines.append(f"imap://{u}@127.0.0.1:{src.info.ports.imap},"
                             f"imap://u{i}-r{r}@dst.test@127.0.0.1:{dst.info.ports.imap},"
                             f"{p1},{p2}")
            csv.write_text("\n".join(lines) + "\n")
            rec = dict(env, XDG_STATE_HOME=str(tmp / f"state-{r}"))
            load = os.getloadavg()[0]
            c0, w0 = _cpu(), time.monotonic()
            if run == "migrate":
                subprocess.run([sys.executable, "-m", "mailctl", "migrate", "--accounts",
                                str(csv), "--jobs", str(par), "--json"], env=rec, check=False,
                               stdout=subprocess.DEVNULL)
            else:
                db = pg.create_database().rsplit("/", 1)[1]
                queue = pg.queue_url(db)
                subprocess.run([sys.executable, "-m", "mailctl", "jobs", "submit", "migrate",
                                "--accounts", str(csv), "--queue", queue], env=rec, check=True,
                               stdout=subprocess.DEVNULL)
                k = int(run.split("x")[1])
                procs = [subprocess.Popen(
                    [sys.executable, "-m", "mailctl", "worker", "--queue", queue,
                     "--concurrency", str(max(1, par // k)), "--until-empty"], env=rec,
                    stderr=subprocess.DEVNULL) for _ in range(k)]
                for p in procs:
                    p.wait()
            wall, cpu = time.monotonic() - w0, _cpu() - c0
            lost = dup = 0
            for i, _ in enumerate(users):
                got = _count(dst.info, f"u{i}-r{r}@dst.test", f"pw-d{i}")
                lost += max(0, m - got)
                dup += max(0, got - m)
            jobs = "-"
            if run != "migrate":
                import psycopg

                with psycopg.connect(host="127.0.0.1", port=pg.port, user=pg.user,
                                     dbname=db) as conn:
                    rows = conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs "
                                        "GROUP BY 1").fetchall()
                jobs = ", ".join(f"{c} {s}" for s, c in rows)
            results.append((run, wall, cpu, lost, dup, jobs, load))
            print(f"{run:9} wall {wall:7.1f} s  client CPU {cpu:7.1f} s  "
                  f"{n * m / wall:7.0f} msg/s  {n * m / cpu:7.0f} msg/CPU-s  "
                  f"lost {lost} dup {dup}  jobs: {jobs}  (load {load:.1f})", flush=True)
        base = results[0]
        print("\n| run | wall | vs migrate | client CPU | vs migrate | msg/s | msg per CPU-s "
              "| lost / duplicated | jobs |\n|---|---|---|---|---|---|---|---|---|")
        for run, wall, cpu, lost, dup, jobs, _ in results:
            print(f"| {run} | {wall:.1f} s | {wall / base[1]:.2f} | {cpu:.1f} s | "
                  f"{cpu / base[2]:.2f} | {n * m / wall:.0f} | {n * m / cpu:.0f} | "
                  f"{lost} / {dup} | {jobs} |")
        return 0 if all(r[3] == 0 and r[4] == 0 for r in results) else 1
    finally:
        stop_mailstack(src)
        stop_mailstack(dst)
        stop_postgres(pg)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
