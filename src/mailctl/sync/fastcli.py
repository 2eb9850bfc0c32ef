"""Lean entry for sync/backup/restore/verify: argparse instead of typer.

Why a second parser: a no-change `backup` must finish within 3x mbsync's
0.045 s, interpreter start included; importing typer, click and rich alone
takes ~0.25 s here. `python -m mailctl.sync backup ...` (or the `mailctl`
entry point when it dispatches these commands here) imports only the standard
library and mailctl.sync. The options are the same as the typer commands in
mailctl.cli.sync, which are what `mailctl --help` shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mailctl.sync.runner import USAGE, Args, cmd_sync, cmd_verify

COMMANDS = ("sync", "backup", "restore", "verify")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mailctl")
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
            continue
        c.add_argument("--state", type=Path)
        c.add_argument("--dry-run", action="store_true")
        c.add_argument("--no-fsync", dest="fsync", action="store_false")
        if name == "sync":
            c.add_argument("--delete", action="store_true")
            c.add_argument("--force", action="store_true")
            c.add_argument("--max-delete-share", type=float, default=0.2)
    return p


def to_args(ns: argparse.Namespace) -> Args:
    d = vars(ns).copy()
    cmd = d.pop("command")
    if cmd == "backup":
        d["dst"] = "maildir:" + d["dst"] if not d["dst"].startswith("maildir:") else d["dst"]
        d["password1_file"], d["password1_ref"] = d.pop("password_file"), d.pop("password_ref")
    elif cmd == "restore":
        d["src"] = "maildir:" + d["src"] if not d["src"].startswith("maildir:") else d["src"]
        d["password2_file"], d["password2_ref"] = d.pop("password_file"), d.pop("password_ref")
    return Args(**d)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        ns = _parser().parse_args(argv)
    except SystemExit as exc:
        return USAGE if exc.code not in (0, None) else 0
    args = to_args(ns)
    return cmd_verify(args) if ns.command == "verify" else cmd_sync(args)
