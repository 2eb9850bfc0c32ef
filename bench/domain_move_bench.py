"""Moving a whole domain between two local sandboxes: mailctl's domain copy vs imapsync.

    python bench/domain_move_bench.py [--mailboxes 50] [--messages 1000] [--jobs 4]
                                      [--imapsync SCRIPT]      # `make imapsync` fetches it

Two sandboxes (mailctl.sandbox via the shared test fixture), the old provider with
MAILBOXES accounts of MESSAGES realistic messages each (sync_bench's generator:
2.5-4.5 KB text, 35 % multipart, 5 % with a ~110 KB attachment, 4 folders, mixed
flags), the new provider with two empty sets of the same accounts: one for mailctl,
one for imapsync. In the same run, each tool does what a move does:

- the full copy (a move's presync), then
- the final delta pass after the cutover, when nothing new arrived (the figure an
  operator waits for while MX already points at the new side).

mailctl: the domain copy engine that `mailctl move`'s presync and delta use
(domain/mailsync.py run_all -> sync_one, one sync state per mailbox; the delta
with add_only, as after a cutover), JOBS mailboxes at once, one session per side
per mailbox, run as its own process (`--ours-pass`, interpreter start included).
imapsync: as its FAQ (FAQ.Massive, examples/sync_parallel_unix.sh) recommends for
many accounts: GNU parallel over a `;`-separated file.txt of host/user/password
pairs, `--max-procs JOBS` (the example's `--delay 1.4` between starts is left out:
it would add 70 s for 50 accounts and measure nothing about imapsync).

Per pass: wall time, CPU time of the whole process tree (getrusage of the reaped
children, so every imapsync under parallel counts), CPU time of the two Dovecots
(their masters' reaped children: the imap processes), and peak RSS of the whole
process tree (the sum over every descendant, sampled every 50 ms from /proc). The
results (and the load average, the machine is shared) go to stdout and, as JSON,
to bench/results/domain_move.json. Every message count is compared afterwards:
both targets must hold exactly what the source holds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DOMAIN = "bench.test"
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")


# -- measuring a process tree ---------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree_rss(root: int) -> int:
    """Bytes resident in `root` and all its descendants right now."""
    kids = _children_map()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += kids.get(pid, [])
        try:
            with open(f"/proc/{pid}/statm") as fh:
                total += int(fh.read().split()[1]) * PAGE
        except OSError:
            pass
    return total


def dovecot_cpu(stacks: list[Any]) -> float:
    """CPU seconds of the sandboxes' Dovecot masters and their reaped children."""
    total = 0.0
    wanted = [str(s.info.state_dir) for s in stacks]
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if "dovecot" not in cmd.split(" ")[0] or not any(w in cmd for w in wanted):
                continue
            f = Path(f"/proc/{d}/stat").read_text()
            fields = f[f.rindex(")") + 2:].split()
            total += sum(int(x) for x in fields[11:15]) / TICK
        except (OSError, ValueError):
            continue
    return total


def measure(cmd: list[str], env: dict[str, str] | None, stacks: list[Any],
            label: str) -> dict[str, Any]:
    os.sync()
    time.sleep(0.5)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    srv0 = dovecot_cpu(stacks)
    load = os.getloadavg()
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         cwd=ROOT)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss(p.pid))
            done.wait(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    done.set()
    th.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"{label} failed (exit {p.returncode}): {' '.join(cmd[:3])} ...\n"
                         f"{err.decode(errors='replace')[-1500:]}")
    res = {"label": label, "wall_s": round(wall, 3),
           "cpu_s": round((after.ru_utime - before.ru_utime)
                          + (after.ru_stime - before.ru_stime), 3),
           "server_cpu_s": round(dovecot_cpu(stacks) - srv0, 3),
           "peak_rss_mb": round(peak[0] / 2**20, 1), "load_before": [round(x, 2) for x in load],
           "stdout_tail": out.decode(errors="replace")[-400:]}
    print(f"  {label:<22} {wall:8.2f} s wall  {res['cpu_s']:7.2f} s CPU  "
          f"{res['server_cpu_s']:7.2f} s Dovecot CPU  {res['peak_rss_mb']:7.1f} MB RSS "
          f"(load {load[0]:.2f})", flush=True)
    return res


# -- mailctl's side: the domain copy engine, in its own process -----------------------


def ours_pass(spec_path: str) -> int:
    """One pass over every mailbox, as `mailctl move` presync/delta run it."""
    from mailctl.domain.access import Access, read_passwords
    from mailctl.domain.mailsync import run_all, safe_name, sync_one
    from mailctl.sync.engine import Options

    spec = json.loads(Path(spec_path).read_text())
    pw = read_passwords(Path(spec["passwords"]))
    src = Access("old", spec["src"][0], spec["src"][1], False, "passwords", passwords=pw)
    dst = Access("new", spec["dst"][0], spec["dst"][1], False, "passwords", passwords=pw)
    state = Path(spec["state"])

    def one(address: str) -> Any:
        return sync_one(address, lambda: src.store(address, readonly=True),
                        lambda: dst.store(address),
                        str(state / safe_name(address) / "sync.db"),
                        Options(jobs=1, add_only=spec["add_only"]),
                        (f"mailbox:old:{address}", f"mailbox:new:{address}"))

    results = run_all(spec["users"], one, spec["jobs"])
    bad = {a: r.error for a, r in results.items() if not r.ok}
    print(json.dumps({"copied": sum(r.copied for r in results.values()),
                      "adopted": sum(r.adopted for r in results.values()),
                      "failed": bad}))
    return 1 if bad else 0


# -- set-up -----------------------------------------------------------------------------


def counts(info: Any, user: str, pw: str) -> dict[str, int]:
    import imaplib

    c = imaplib.IMAP4(info.host, info.ports.imap, timeout=60)
    try:
        c.login(user, pw)
        _, data = c.list('""', "*")
        out = {}
        for line in data:
            if not isinstance(line, bytes):
                continue
            m = re.match(r'\((.*?)\) (?:NIL|"[^"]*") (.*)$', line.decode())
            assert m, line
            if "\\noselect" in m.group(1).lower() or "\\nonexistent" in m.group(1).lower():
                continue
            name = m.group(2).strip('"')
            _, st = c.status(f'"{name}"', "(MESSAGES)")
            got = re.search(rb"MESSAGES (\d+)", b" ".join(x for x in st if isinstance(x, bytes)))
            assert got, (name, st)
            out[name] = int(got.group(1))
        return {k: v for k, v in out.items() if v}
    finally:
        c.logout()


def bench_env() -> dict[str, str]:
    """As installed: bytecode cached (sync_bench.ours_env)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = "/tmp/mailctl-bench-pycache"
    return env


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--ours-pass":
        raise SystemExit(ours_pass(sys.argv[2]))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mailboxes", type=int, default=50)
    ap.add_argument("--messages", type=int, default=1000, help="per mailbox")
    ap.add_argument("--jobs", type=int, default=4, help="mailboxes at once, both tools")
    ap.add_argument("--imapsync", metavar="SCRIPT",
                    default=str(ROOT / ".state" / "imapsync" / "imapsync"),
                    help="the imapsync script [default: where `make imapsync` puts it]")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" /
                    "domain_move.json")
    a = ap.parse_args()
    import importlib.util

    # sync_bench's message generator and filler (loaded by path: bench/ is no package)
    loader = importlib.util.spec_from_file_location("sync_bench", ROOT / "bench" /
                                                    "sync_bench.py")
    assert loader is not None and loader.loader is not None
    sync_bench: Any = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(sync_bench)
    PW, fill = sync_bench.PW, sync_bench.fill
    from tests.fixtures.mailstack import start_mailstack, stop_mailstack, write_dms

    have_imapsync = Path(a.imapsync).is_file() and shutil.which("parallel") is not None
    if not have_imapsync:
        print(f"imapsync not run: {a.imapsync} missing or GNU parallel not installed "
              "(make imapsync)", flush=True)
    users = [f"u{i:03d}@{DOMAIN}" for i in range(a.mailboxes)]
    theirs = {u: f"is-{u}" for u in users}
    old, new = start_mailstack(), start_mailstack()
    stacks = [old, new]
    work = Path(tempfile.mkdtemp(prefix="domain-move-bench-"))
    results: dict[str, Any] = {"mailboxes": a.mailboxes, "messages_per_mailbox": a.messages,
                               "jobs": a.jobs, "cpus": os.cpu_count(), "passes": {}}
    try:
        write_dms(old.dms_dir, accounts={u: PW for u in users})
        write_dms(new.dms_dir, accounts={**{u: PW for u in users},
                                         **{v: PW for v in theirs.values()}})
        for s in stacks:
            s.sandbox.reload()
        t = time.perf_counter()
        with ThreadPoolExecutor(2) as pool:
            sizes = list(pool.map(lambda iu: fill(old.info, iu[1], a.messages, seed=iu[0]),
                                  enumerate(users)))
        results["bytes"] = sum(sizes)
        print(f"filled {a.mailboxes} x {a.messages} messages, {sum(sizes) / 1e6:.0f} MB in "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        conf = old.info.state_dir / "dovecot.conf"
        for u in users:  # warm the source's indexes: whoever reads first would pay for them
            subprocess.run(["doveadm", "-c", str(conf), "fetch", "-u", u,
                            "flags date.received size.virtual text", "mailbox", "*", "all"],
                           stdout=subprocess.DEVNULL, check=True)
        env = bench_env()
        subprocess.run([sys.executable, "-c", "import mailctl.domain.mailsync, "
                        "mailctl.domain.access, mailctl.sync.engine, mailctl.sync.imapstore, "
                        "mailctl.sync.pipeline, mailctl.sync.state"], env=env, check=True)
        pwfile = work / "passwords.tsv"
        pwfile.write_text("".join(f"{u}\t{PW}\n" for u in users))
        pwfile.chmod(0o600)

        def spec(add_only: bool) -> str:
            p = work / f"spec-{add_only}.json"
            p.write_text(json.dumps({
                "src": [old.info.host, old.info.ports.imap],
                "dst": [new.info.host, new.info.ports.imap], "users": users,
                "passwords": str(pwfile), "state": str(work / "ours-state"),
                "jobs": a.jobs, "add_only": add_only}))
            return str(p)

        ours = [sys.executable, str(Path(__file__).resolve()), "--ours-pass"]
        filetxt = work / "file.txt"
        filetxt.write_text("".join(
            f"{old.info.host};{u};{PW};{new.info.host};{theirs[u]};{PW};\n" for u in users))
        (work / "imapsync-tmp").mkdir()
        isync = ["parallel", "--max-procs", str(a.jobs), "--colsep", ";", "--arg-file",
                 str(filetxt), "--line-buffer", "perl", a.imapsync,
                 "--host1", "{1}", "--user1", "{2}", "--password1", "{3}",
                 "--host2", "{4}", "--user2", "{5}", "--password2", "{6}",
                 "--port1", str(old.info.ports.imap), "--port2", str(new.info.ports.imap),
                 "--nossl1", "--notls1", "--nossl2", "--notls2", "--noreleasecheck",
                 "--nolog", "--tmpdir", str(work / "imapsync-tmp"),
                 "--pidfile", str(work / "imapsync-tmp" / "{2}.pid")]
        passes = results["passes"]
        print(f"domain move, {a.mailboxes} mailboxes x {a.messages} messages, "
              f"{a.jobs} at once:", flush=True)
        passes["ours_full"] = measure([*ours, spec(False)], env, stacks, "mailctl full copy")
        if have_imapsync:
            passes["imapsync_full"] = measure(isync, None, stacks, "imapsync full copy")
        time.sleep(1.1)
        passes["ours_delta"] = measure([*ours, spec(True)], env, stacks, "mailctl final delta")
        if have_imapsync:
            passes["imapsync_delta"] = measure(isync, None, stacks, "imapsync final delta")
        # a second delta each: the figure an operator sees on a re-run, less noise
        passes["ours_delta2"] = measure([*ours, spec(True)], env, stacks,
                                        "mailctl final delta 2")

        # exactly what the source holds, at both targets
        bad = []
        for u in users:
            want = counts(old.info, u, PW)
            if counts(new.info, u, PW) != want:
                bad.append(f"mailctl {u}")
            if have_imapsync and counts(new.info, theirs[u], PW) != want:
                bad.append(f"imapsync {theirs[u]}")
        results["count_mismatches"] = bad
        print("message counts: " + ("every mailbox equal to the source" if not bad else
                                    f"MISMATCH {', '.join(bad[:10])}"), flush=True)
        summary(results)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {a.out}")
    finally:
        for s in stacks:
            stop_mailstack(s)
        shutil.rmtree(work, ignore_errors=True)


def summary(r: dict[str, Any]) -> None:
    p = r["passes"]
    ours_total = p["ours_full"]["wall_s"] + p["ours_delta"]["wall_s"]
    r["ours_total_s"] = round(ours_total, 2)
    delta = min(p["ours_delta"]["wall_s"], p["ours_delta2"]["wall_s"])
    print(f"mailctl total (full + final delta): {ours_total:.2f} s; final delta "
          f"{p['ours_delta']['wall_s']:.2f} s / {p['ours_delta2']['wall_s']:.2f} s "
          f"(bar: < 2 s: {'met' if delta < 2 else 'MISSED'})")
    if "imapsync_full" in p:
        theirs = p["imapsync_full"]["wall_s"] + p["imapsync_delta"]["wall_s"]
        r["imapsync_total_s"] = round(theirs, 2)
        r["speedup_total"] = round(theirs / ours_total, 2)
        cpu_o = p["ours_full"]["cpu_s"] + p["ours_delta"]["cpu_s"]
        cpu_i = p["imapsync_full"]["cpu_s"] + p["imapsync_delta"]["cpu_s"]
        print(f"imapsync total: {theirs:.2f} s -> mailctl is {theirs / ours_total:.1f}x "
              f"faster (bar: >= 5x: {'met' if theirs / ours_total >= 5 else 'MISSED'}); "
              f"client CPU {cpu_o:.1f} s vs {cpu_i:.1f} s; final delta "
              f"{p['ours_delta']['wall_s']:.2f} s vs {p['imapsync_delta']['wall_s']:.2f} s; "
              f"peak RSS {max(x['peak_rss_mb'] for k, x in p.items() if 'ours' in k):.0f} MB "
              f"vs {max(p['imapsync_full']['peak_rss_mb'], p['imapsync_delta']['peak_rss_mb']):.0f}"
              " MB")


if __name__ == "__main__":
    main()
