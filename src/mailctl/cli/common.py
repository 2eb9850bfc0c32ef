"""What every command shares: the -f option, error printing and exit codes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

if TYPE_CHECKING:
    from mailctl.config.load import Config

# Exit codes scripts can rely on (docs/cli.md).
OK = 0
FAILED = 1  # invalid input or config, or checks that found problems
CHANGES = 2  # plan --detailed-exitcode: there are changes
PROVIDER = 3  # a provider could not be read or an apply did not complete
REFUSED = 4  # safety limit hit or deletion not confirmed
USAGE = 64  # bad command line (EX_USAGE)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="config file [default: $MAILCTL_CONFIG or ./mailctl.yaml]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]


def err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")


def fail(message: str, code: int = FAILED) -> NoReturn:
    err(f"error: {message}")
    raise typer.Exit(code)


def load(path: Path | None, as_json: bool = False, *, secrets: bool = True) -> Config:
    """Load the config or exit 1 with every problem listed (file:line:col: ...).

    `secrets=False`: the command talks to no provider, so their secret references
    are not resolved (see `load_config`)."""
    from mailctl.config.errors import ConfigError
    from mailctl.config.load import load_config

    try:
        return load_config(path, secrets=secrets)
    except ConfigError as exc:
        if as_json:
            import json

            print(json.dumps({"ok": False, "errors": [i.as_dict() for i in exc.issues]},
                             indent=2))
        for issue in exc.issues:
            err(issue.format())
        n = len(exc.issues)
        err(f"{n} problem{'s' if n != 1 else ''} found; nothing was changed.")
        raise typer.Exit(FAILED) from None


def provider_failure(exc: Exception) -> NoReturn:
    from mailctl.secret import scrub

    fail(scrub(str(exc)), PROVIDER)
