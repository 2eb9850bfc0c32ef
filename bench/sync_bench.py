"""mailctl backup/sync vs mbsync, offlineimap and dsync on one local Dovecot, same run.

    python bench/sync_bench.py [--messages 10000] [--rss-50k] [--offlineimap] [--imapsync SCRIPT]

Starts a sandbox (mailctl.sandbox via the shared test fixture), fills an
account with realistic messages (2.5-4.5 KB text, 35 % multipart, 5 % with a
~110 KB attachment, 4 folders, mixed flags) over MULTIAPPEND, then times:
full backup IMAP->Maildir with fsync (mailctl vs mbsync, fsync on), the
no-change re-run including process start (median of 9, interleaved with
mbsync's), IMAP->IMAP migration (mailctl sync vs `doveadm backup -R imapc:`,
3 rounds interleaved, medians), imapsync into its own account (one run, if
--imapsync names the script: it is not packaged for Debian 12, but its Perl
modules are; otherwise the figure from ../shared/notes is quoted), and peak
RSS. Figures are
printed as ratios against the peer measured in this same run; every timed run
starts after an os.sync() so no tool pays for the previous one's dirty pages.

mailctl runs as an installed package would: bytecode cached (the environment
may set PYTHONDONTWRITEBYTECODE=1, which would recompile every module in every
process), here into PYTHONPYCACHEPREFIX=/tmp/mailctl-bench-pycache, warmed once.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

from mailctl.sandbox import SandboxInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PW = "bench-password-1"
REPS = 3
FOLDERS = [("INBOX", 0.50), ("Archive", 0.30), ("Sent", 0.15), ("Lists/python", 0.05)]
WORDS = ["the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "with", "meeting",
         "invoice", "report", "deadline", "project", "budget", "server", "release", "review",
         "backup", "mailbox", "migration", "folder"]


def make(rng: random.Random, i: int) -> tuple[bytes, str]:
    m = EmailMessage()
    m["From"], m["To"] = f"user{rng.randint(1, 50)}@example.com", "me@example.org"
    m["Subject"] = " ".join(rng.choices(WORDS, k=6))
    m["Message-ID"] = f"<bench{i}.{rng.getrandbits(48)}@example.com>"
    m["Date"] = "Mon, 06 Jan 2025 10:00:00 +0000"
    for n in range(rng.randint(2, 4)):
        m[f"X-Received-{n}"] = f"from mx{n}.example.net by mx.example.org; id {rng.getrandbits(64)}"
    text = "\n".join(" ".join(rng.choices(WORDS, k=12)) for _ in range(rng.randint(30, 55)))
    m.set_content(text)
    if rng.random() < 0.35:
        m.add_alternative(f"<html><body><p>{text}</p></body></html>", subtype="html")
    if rng.random() < 0.05:
        m.add_attachment(rng.randbytes(80_000), maintype="application", subtype="pdf",
                         filename=f"doc{i}.pdf")
    r = rng.random()
    flags = "\\Seen" if r < 0.7 else ""
    flags += " \\Flagged" if rng.random() < 0.05 else ""
    flags += " \\Answered" if rng.random() < 0.15 else ""
    return m.as_bytes().replace(b"\n", b"\r\n"), flags.strip()


def fill(info: SandboxInfo, user: str, n: int, seed: int = 7) -> int:
    from mailctl.secret import Secret
    from mailctl.sync.endpoint import parse_endpoint
    from mailctl.sync.imapstore import ImapStore
    from mailctl.sync.model import Msg

    rng = random.Random(seed)
    store = ImapStore(parse_endpoint(f"imap://{user}@{info.host}:{info.ports.imap}"),
                      Secret(PW))
    total, i = 0, 0
    for folder, share in FOLDERS:
        if folder != "INBOX":
            store.create(folder)
        count = int(n * share)
        while count > 0:
            batch = []
            for _ in range(min(500, count)):
                body, flags = make(rng, i)
                i += 1
                batch.append(Msg("", flags, "06-Jan-2025 10:00:00 +0000", body))
                total += len(body)
            store.append(folder, batch)
            count -= len(batch)
    store.close()
    return total


def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """Wall seconds and peak RSS (KB) from /usr/bin/time (wait4's ru_maxrss would count
    the forked Python parent's pages before exec)."""
    out = Path(tempfile.mkstemp(prefix="rss-")[1])
    os.sync()
    time.sleep(0.3)
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(out), *cmd], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{p.stderr.decode()[-500:]}")
    rss = int(out.read_text().split()[-1])
    out.unlink()
    return wall, rss


def ours_env() -> dict[str, str]:
    """As installed: bytecode cached (pip compiles it); here into /tmp, not the tree."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = "/tmp/mailctl-bench-pycache"
    return env


def mbsync_rc(info: SandboxInfo, user: str, path: Path, rc: Path) -> None:
    pw = path.parent / "mbsync.pw"
    pw.write_text(PW)
    rc.write_text(f"""IMAPAccount src
Host {info.host}
Port {info.ports.imap}
User {user}
PassCmd "cat {pw}"
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account src

MaildirStore local
Path {path}/
Inbox {path}/INBOX
SubFolders Verbatim

Channel c
Far :remote:
Near :local:
Patterns *
Create Near
Sync Pull
SyncState *
CopyArrivalDate yes
""")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--rss-50k", action="store_true")
    ap.add_argument("--offlineimap", action="store_true", help="slow: ~50 s per 10k")
    ap.add_argument("--imapsync", metavar="SCRIPT", default=shutil.which("imapsync"),
                    help="the imapsync script (its Perl modules from Debian; ~30 s per 10k)")
    a = ap.parse_args()
    from tests.fixtures.mailstack import start_mailstack, stop_mailstack

    stack = start_mailstack()
    info = stack.info
    work = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    users = {n: f"{n}@bench.test" for n in ("src", "big", "imapsync",
                                            *(f"ours{i}" for i in range(REPS)),
                                            *(f"dsync{i}" for i in range(REPS)))}
    stack.set(accounts={u: PW for u in users.values()})
    py, env = sys.executable, ours_env()
    pwf = work / "pw"
    pwf.write_text(PW + "\n")
    src_url = f"imap://{users['src']}@{info.host}:{info.ports.imap}"
    res: dict[str, float] = {}
    try:
        t = time.perf_counter()
        size = fill(info, users["src"], a.messages)
        print(f"filled {a.messages} messages, {size / 1e6:.1f} MB in "
              f"{time.perf_counter() - t:.1f} s", flush=True)
        subprocess.run([py, "-c", "import mailctl.cli, mailctl.sync.fastcli, mailctl.sync.imapstore"
                        ", mailctl.sync.pipeline, mailctl.sync.maildir, mailctl.sync.engine,"
                        " mailctl.sync.state, mailctl.sync.stores, mailctl.sync.files"],
                       env=env)  # warm the bytecode cache
        conf = info.state_dir / "dovecot.conf"
        # Warm the source's indexes first (as the notes did): otherwise whichever tool reads
        # the fresh mailbox first also pays for Dovecot building its caches.
        subprocess.run(["doveadm", "-c", str(conf), "fetch", "-u", users["src"],
                        "flags date.received size.virtual text", "mailbox", "*", "all"],
                       stdout=subprocess.DEVNULL, check=True)
        full: dict[str, list[tuple[float, int]]] = {"ours": [], "mbsync": []}
        for i in range(2):  # alternate who goes first; best of two each
            backup = [py, "-m", "mailctl.sync", "backup", src_url, str(work / f"ours{i}"),
                      "--password-file", str(pwf)]
            rc = work / f"mbsyncrc{i}"
            mbsync_rc(info, users["src"], work / f"mb{i}", rc)
            (work / f"mb{i}").mkdir()
            cmds = {"ours": (backup, env), "mbsync": (["mbsync", "-q", "-c", str(rc), "-a"], None)}
            for k in (("ours", "mbsync") if i % 2 == 0 else ("mbsync", "ours")):
                full[k].append(timed(*cmds[k]))
        print("backup rounds (s): " + "; ".join(
            f"{k} " + " ".join(f"{x[0]:.2f}" for x in v) for k, v in full.items()), flush=True)
        res["ours_full"], res["ours_rss"] = min(full["ours"])[0], max(x[1] for x in full["ours"])
        res["mbsync_full"], res["mbsync_rss"] = min(full["mbsync"])
        time.sleep(1.1)
        # What a cron job runs: the installed `mailctl` entry point (and `python -m`).
        entry = [str(Path(py).parent / "mailctl"), *backup[3:]]
        noop: dict[str, list[float]] = {"ours": [], "ours_m": [], "mbsync": []}
        for _ in range(9):  # interleaved, so all three see the same machine load
            noop["ours"].append(timed(entry, env)[0])
            noop["ours_m"].append(timed(backup, env)[0])
            noop["mbsync"].append(timed(["mbsync", "-q", "-c", str(rc), "-a"])[0])
        for k, v in noop.items():
            res[f"{k}_noop"] = statistics.median(v)
        mig: dict[str, list[float]] = {"ours": [], "dsync": []}
        for i in range(REPS):  # alternate who goes first: the disk's state drifts
            runs = {
                "ours": [py, "-m", "mailctl.sync", "sync", src_url,
                         f"imap://{users[f'ours{i}']}@{info.host}:{info.ports.imap}",
                         "--password1-file", str(pwf), "--password2-file", str(pwf),
                         "--state", str(work / f"sync{i}.db")],
                "dsync": [
                    "doveadm", "-c", str(conf), "-o", f"imapc_host={info.host}",
                    "-o", f"imapc_port={info.ports.imap}", "-o", f"imapc_user={users['src']}",
                    "-o", f"imapc_password={PW}", "-o", "imapc_ssl=no",
                    "-o", "imapc_features=rfc822.size fetch-headers modseq",
                    "-o", "mail_prefetch_count=20", "backup", "-R", "-u",
                    users[f"dsync{i}"], "imapc:"]}
            for k in (("ours", "dsync") if i % 2 == 0 else ("dsync", "ours")):
                mig[k].append(timed(runs[k], env if k == "ours" else None)[0])
        print("migration rounds (s): " + "; ".join(
            f"{k} " + " ".join(f"{x:.2f}" for x in v) for k, v in mig.items()), flush=True)
        res["ours_sync"], res["dsync"] = (statistics.median(mig["ours"]),
                                          statistics.median(mig["dsync"]))
        if a.imapsync:
            try:
                res["imapsync"], res["imapsync_rss"] = timed([
                    "perl", a.imapsync, "--host1", info.host, "--port1", str(info.ports.imap),
                    "--user1", users["src"], "--password1", PW, "--nossl1", "--notls1",
                    "--host2", info.host, "--port2", str(info.ports.imap), "--user2",
                    users["imapsync"], "--password2", PW, "--nossl2", "--notls2",
                    "--noreleasecheck", "--nolog", "--tmpdir", str(work / "imapsync-tmp")])
            except SystemExit as exc:  # a peer's failure must not lose the run's figures
                print(f"imapsync failed: {exc}", flush=True)
        if a.offlineimap:
            res["offlineimap_full"] = offlineimap(info, users["src"], work)
        ver = subprocess.run([py, "-m", "mailctl.sync", "verify", src_url,
                              f"maildir:{work/'ours0'}", "--password1-file", str(pwf)], env=env,
                             capture_output=True, text=True)
        res["verified"] = float(ver.returncode == 0)
        ver = subprocess.run([py, "-m", "mailctl.sync", "verify", src_url,
                              f"imap://{users['ours0']}@{info.host}:{info.ports.imap}",
                              "--password1-file", str(pwf), "--password2-file", str(pwf)],
                             env=env, capture_output=True, text=True)
        res["verified_sync"] = float(ver.returncode == 0)
        if a.rss_50k:
            fill(info, users["big"], 50_000, seed=8)
            big = [py, "-m", "mailctl.sync", "backup",
                   f"imap://{users['big']}@{info.host}:{info.ports.imap}", str(work / "big"),
                   "--password-file", str(pwf)]
            res["ours_full_50k"], res["ours_rss_50k"] = timed(big, env)
    finally:
        stop_mailstack(stack)
        shutil.rmtree(work, ignore_errors=True)
    report(a.messages, res)


def offlineimap(info: SandboxInfo, user: str, work: Path) -> float:
    rc = work / "offlineimaprc"
    rc.write_text(f"""[general]
accounts = b
[Account b]
localrepository = l
remoterepository = r
[Repository l]
type = Maildir
localfolders = {work}/oi
[Repository r]
type = IMAP
remotehost = {info.host}
remoteport = {info.ports.imap}
remoteuser = {user}
remotepass = {PW}
ssl = no
starttls = no
readonly = True
""")
    return timed(["offlineimap", "-c", str(rc), "-o", "-u", "quiet"])[0]


def report(n: int, r: dict[str, float]) -> None:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{n} messages, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average now {load}")
    print(f"backup IMAP->Maildir, fsync : best of 2: mailctl {r['ours_full']:.2f} s "
          f"({n / r['ours_full']:.0f} msg/s), mbsync {r['mbsync_full']:.2f} s -> "
          f"{r['mbsync_full'] / r['ours_full']:.2f}x mbsync's msg/s (bar: >= 2x)")
    print(f"no-change re-run (process)  : mailctl {r['ours_noop'] * 1000:.0f} ms "
          f"(python -m mailctl.sync {r['ours_m_noop'] * 1000:.0f} ms), mbsync "
          f"{r['mbsync_noop'] * 1000:.0f} ms -> {r['ours_noop'] / r['mbsync_noop']:.2f}x "
          f"mbsync's time (bar: <= 3x mbsync in the same run)")
    print(f"IMAP->IMAP migration        : mailctl {r['ours_sync']:.2f} s, dsync "
          f"{r['dsync']:.2f} s (medians of {REPS}) -> {r['dsync'] / r['ours_sync']:.2f}x "
          "dsync's speed (bar: >= 1x)")
    if "imapsync" in r:
        print(f"IMAP->IMAP vs imapsync      : imapsync {r['imapsync']:.2f} s "
              f"({r['imapsync_rss'] / 1024:.0f} MB RSS) -> {r['imapsync'] / r['ours_sync']:.1f}x "
              "imapsync's speed (bar: >= 5x)")
    else:
        print(f"IMAP->IMAP vs imapsync      : not run (--imapsync SCRIPT); notes: 29-40 s -> "
              f"{29 / r['ours_sync']:.1f}-{40 / r['ours_sync']:.1f}x (bar: >= 5x)")
    if "offlineimap_full" in r:
        print(f"offlineimap full backup     : {r['offlineimap_full']:.2f} s -> "
              f"{r['offlineimap_full'] / r['ours_full']:.1f}x slower than mailctl")
    print(f"peak RSS backup             : mailctl {r['ours_rss'] / 1024:.0f} MB at {n}, mbsync "
          f"{r['mbsync_rss'] / 1024:.0f} MB" + (
              f"; mailctl {r['ours_rss_50k'] / 1024:.0f} MB at 50000 "
              f"({r['ours_full_50k']:.1f} s)" if "ours_rss_50k" in r else ""))
    print(f"verify after backup         : {'ok' if r['verified'] else 'FAILED'}; after "
          f"migration: {'ok' if r['verified_sync'] else 'FAILED'}")


if __name__ == "__main__":
    main()
