"""The `mailctl` command. Only parsing and printing live here; the work is in the library."""

from __future__ import annotations

import sys


def main() -> None:
    # Fast path: `mailctl --version` must not pay for typer, rich or pydantic.
    if sys.argv[1:] in (["--version"], ["-V"]):
        from mailctl import __version__

        print(f"mailctl {__version__}")
        return
    # Fast path: an unchanged incremental backup must finish in ~0.1 s, process
    # start included, which typer's import alone (~0.2 s) would not allow. These
    # commands parse with argparse in mailctl.sync.fastcli; --help stays typer's.
    args = sys.argv[1:]
    if args and args[0] in _SYNC_COMMANDS and not {"-h", "--help"} & set(args):
        from mailctl.sync.fastcli import main as sync_main

        sys.exit(sync_main())
    import os

    # mailctl uses no pydantic plugins; looking for them scans every installed
    # package's metadata (50 ms of each command's start-up, measured).
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    from mailctl.cli.app import run

    sys.exit(run())


_SYNC_COMMANDS = frozenset(("sync", "backup", "restore", "verify"))
