"""Lean entry for sync/backup/restore/verify: argparse instead of typer.

Why a second parser: a no-change `backup` must finish within 3x mbsync's
0.045 s, interpreter start included; importing typer, click and rich alone
takes ~0.25 s here. `python -m mailctl.sync backup ...` (or the `mailctl`
entry point when it dispatches these commands here) imports only the standard
library and mailctl.sync. The options are the same as the typer commands in
mailctl.cli.sync, which are what `mailctl --help` shows.
"""

from __future__ import annotations

import sys

from mailctl.sync.runner import INTERRUPTED, USAGE, Args, cmd_sync, cmd_verify

TYPE_CHECKING = False  # not from typing: ~5 ms of start-up
if TYPE_CHECKING:
    import argparse
    from typing import Any, NoReturn

COMMANDS = ("sync", "backup", "restore", "verify")
_FLAGS = {"--json": "json", "--allow-extra": "allow_extra", "--dry-run": "dry_run",
          "--delete": "delete", "--force": "force", "--delivered": "delivered"}
_LISTS = {"--folders": "folders", "--exclude": "exclude", "--map": "maps"}
_PATHS = {"--password-file", "--password1-file", "--password2-file", "--state"}
_VALUES = {"--password-ref", "--password1-ref", "--password2-ref", "--ca-file",
           "--max-delete-share", "--jobs", *_PATHS}


def _parser() -> argparse.ArgumentParser:
    import argparse
    from pathlib import Path

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:  # one line, exit 64 (not usage + 2)
            sys.stderr.write(f"error: {message} (expected: mailctl {self.prog.split()[-1]} "
                             "--help)\n")
            raise SystemExit(USAGE)

    p = Parser(prog="mailctl")
    sub = p.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        c = sub.add_parser(name)
        c.add_argument("src")
        c.add_argument("dst")
        if name in ("sync", "verify"):
            for n in ("1", "2"):
                c.add_argument(f"--password{n}-file", type=Path)
                c.add_argument(f"--password{n}-ref")
        else:
            c.add_argument("--password-file", type=Path)
            c.add_argument("--password-ref")
        c.add_argument("--folders", action="append", default=[])
        c.add_argument("--exclude", action="append", default=[])
        c.add_argument("--map", dest="maps", action="append", default=[])
        c.add_argument("--ca-file")
        c.add_argument("--json", action="store_true")
        if name == "verify":
            c.add_argument("--allow-extra", action="store_true")
            c.add_argument("--delivered", action="store_true")
            continue
        c.add_argument("--state", type=Path)
        c.add_argument("--dry-run", action="store_true")
        c.add_argument("--no-fsync", dest="fsync", action="store_false")
        c.add_argument("--jobs", type=int, default=2)
        if name == "sync":
            c.add_argument("--delete", action="store_true")
            c.add_argument("--force", action="store_true")
            c.add_argument("--max-delete-share", type=float, default=0.2)
    return p


def _quick(argv: list[str]) -> dict[str, Any] | None:
    """The common argv shapes without argparse (~10 ms of imports saved on a run whose
    whole budget is ~0.1 s). None for anything unusual (abbreviations, `--opt=value`,
    unknown or misplaced options, a wrong count of operands): argparse then parses it,
    so errors and edge cases read exactly as before."""
    if not argv or argv[0] not in COMMANDS:
        return None
    cmd = argv[0]
    two = cmd in ("sync", "verify")
    d: dict[str, Any] = {"command": cmd, "folders": [], "exclude": [], "maps": [],
                         "ca_file": None, "json": False}
    if two:
        d.update(password1_file=None, password2_file=None, password1_ref=None,
                 password2_ref=None)
    else:
        d.update(password_file=None, password_ref=None)
    if cmd == "verify":
        d["allow_extra"] = d["delivered"] = False
    else:
        d.update(state=None, dry_run=False, fsync=True, jobs=2)
    if cmd == "sync":
        d.update(delete=False, force=False, max_delete_share=0.2)
    pos: list[str] = []
    i = 1
    while i < len(argv):
        a = argv[i]
        i += 1
        if not a.startswith("-") or a == "-":
            pos.append(a)
        elif a == "--no-fsync" and "fsync" in d:
            d["fsync"] = False
        elif a in _FLAGS and _FLAGS[a] in d:
            d[_FLAGS[a]] = True
        elif a in _LISTS and i < len(argv) and not argv[i].startswith("-"):
            d[_LISTS[a]].append(argv[i])
            i += 1
        elif a in _VALUES and i < len(argv) and not argv[i].startswith("-"):
            key = a[2:].replace("-", "_")
            if key not in d:
                return None
            v = argv[i]
            i += 1
            d[key] = (float(v) if key == "max_delete_share" else int(v) if key == "jobs"
                      else v)  # paths stay str: runner takes either, pathlib costs ~10 ms
        else:
            return None
    if len(pos) != 2:
        return None
    d["src"], d["dst"] = pos
    return d


def to_args(ns: argparse.Namespace | dict[str, Any]) -> Args:
    d = (ns if isinstance(ns, dict) else vars(ns)).copy()
    cmd = d.pop("command")
    if cmd == "backup":
        d["dst"] = "maildir:" + d["dst"] if not d["dst"].startswith("maildir:") else d["dst"]
        d["password1_file"], d["password1_ref"] = d.pop("password_file"), d.pop("password_ref")
    elif cmd == "restore":
        d["src"] = "maildir:" + d["src"] if not d["src"].startswith("maildir:") else d["src"]
        d["password2_file"], d["password2_ref"] = d.pop("password_file"), d.pop("password_ref")
    return Args(**d)


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return INTERRUPTED


def _main(argv: list[str]) -> int:
    import os

    if os.environ.get(PARENT_ENV):
        _die_with_parent(int(os.environ[PARENT_ENV]))
    try:
        quick = _quick(argv)
    except ValueError:  # e.g. --max-delete-share x: argparse says what is wrong
        quick = None
    if quick is not None:
        command = quick["command"]
        args = to_args(quick)
    else:
        try:
            ns = _parser().parse_args(argv)
        except SystemExit as exc:
            return USAGE if exc.code not in (0, None) else 0
        command = ns.command
        args = to_args(ns)
    return cmd_verify(args) if command == "verify" else cmd_sync(args)


PARENT_ENV = "MAILCTL_SYNC_PARENT"  # set by migrate for the sync it starts


def _die_with_parent(parent: int) -> None:
    """A `mailctl migrate` killed with -9 takes its account syncs with it: they would go
    on as orphans, and the re-run would find their state locked. Linux: the kernel sends
    SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG); the check after it covers a
    parent that died before. Elsewhere the syncs finish their account."""
    import os

    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(INTERRUPTED)
