"""The `mailctl` command. Only parsing and printing live here; the work is in the library."""

from __future__ import annotations

import sys


def main() -> None:
    # Fast path: `mailctl --version` must not pay for typer, rich or pydantic.
    if sys.argv[1:] in (["--version"], ["-V"]):
        from mailctl import __version__

        print(f"mailctl {__version__}")
        return
    from mailctl.cli.app import run

    sys.exit(run())
