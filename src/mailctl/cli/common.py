"""What every command shares: the -f option, error printing, exit codes, output checks.

Exit codes are defined here and nowhere else (docs/cli.md has the table; the
lean sync entry, which cannot import typer, mirrors them and a test keeps the
two equal). A user's mistake ends in `fail()` or `usage()`: one `error:` line
on stderr, and under `--json` also one JSON object on stdout, so a script
always has something to parse:

    {"ok": false, "error": {"kind": "auth", "message": "...", "exit_code": 3}}
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from mailctl.config.load import Config

# Exit codes scripts can rely on (docs/cli.md, "Exit codes").
OK = 0  # success; plan --detailed-exitcode: nothing to do; status: in sync
FAILED = 1  # invalid or unreadable config, checks that found problems, other failures
CHANGES = 2  # plan --detailed-exitcode: changes or drift; status: not in sync
PROVIDER = 3  # a provider or server could not be reached/read, or an apply did not complete
REFUSED = 4  # a safety limit, or a delete not confirmed
USAGE = 64  # bad command line (EX_USAGE), checked before any side effect
INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

# The `kind` a JSON error carries when the caller names none.
_KINDS = {FAILED: "failed", PROVIDER: "provider", REFUSED: "refused", USAGE: "usage",
          INTERRUPTED: "interrupted"}

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="config file [default: $MAILCTL_CONFIG or ./mailctl.yaml]",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output on stdout")]

_json_errors = False


def json_errors(enabled: bool) -> None:
    """From here on, failures also print a JSON object on stdout (a command's --json)."""
    global _json_errors
    _json_errors = enabled


def json_errors_on() -> bool:
    return _json_errors


def json_error(kind: str, message: str, code: int, **extra: Any) -> None:
    """The one shape of a failure under --json (printed on stdout)."""
    error = {"kind": kind, "message": message, "exit_code": code, **extra}
    sys.stdout.write(json.dumps({"ok": False, "error": error}, indent=2, default=str) + "\n")


def err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")


def fail(message: str, code: int = FAILED, *, kind: str | None = None,
         hint: str | None = None, **extra: Any) -> NoReturn:
    """`error: message` on stderr (and the JSON error under --json), then exit `code`."""
    if _json_errors:
        json_error(kind or _KINDS.get(code, "failed"), message, code,
                   **({"hint": hint} if hint else {}), **extra)
    err(f"error: {message}")
    if hint:
        err(f"  hint: {hint}")
    raise typer.Exit(code)


def usage(what: str, expected: str) -> NoReturn:
    """A bad command line: `error: <what> (expected <what>)`, exit 64."""
    fail(f"{what} (expected {expected})", USAGE, kind="usage")


def load(path: Path | None, as_json: bool = False, *, secrets: bool = True) -> Config:
    """Load the config or exit 1 with every problem listed (file:line:col: ...).

    `secrets=False`: the command talks to no provider, so their secret references
    are not resolved (see `load_config`)."""
    from mailctl.config.errors import ConfigError
    from mailctl.config.load import load_config

    try:
        return load_config(path, secrets=secrets)
    except ConfigError as exc:
        n = exc.count
        summary = f"{n} problem{'s' if n != 1 else ''} found; nothing was changed."
        if as_json or _json_errors:
            issues = [i.as_dict() for i in exc.issues]
            sys.stdout.write(json.dumps({
                "ok": False,
                "error": {"kind": "config", "message": summary, "exit_code": FAILED,
                          "issues": issues, "omitted": exc.omitted},
                "errors": issues,  # the shape `validate --json` had first
            }, indent=2) + "\n")
        for issue in exc.issues:
            err(issue.format())
        if exc.omitted:
            err(f"... and {exc.omitted} more (only the first {len(exc.issues)} are listed)")
        err(summary)
        raise typer.Exit(FAILED) from None


def require_domains(config: Config) -> None:
    """plan/apply/status on a file that declares no domain: say so, never "in sync"."""
    if not config.desired.domains:
        fail(f"{config.path} declares no domains: there is nothing to compare",
             hint="add a domain under `domains:` (`mailctl init` writes a starter file)",
             kind="config")


def provider_failure(exc: Exception) -> NoReturn:
    """A provider or server that could not be read or reached: exit 3."""
    from mailctl.secret import scrub

    kind = getattr(getattr(exc, "kind", None), "value", None) or "provider"
    fail(scrub(str(exc)), PROVIDER, kind=kind)


def check_output_file(path: Path, option: str) -> None:
    """Before any side effect: `path` can be created or replaced by this user.

    A run that fails after the provider has created accounts loses what it meant
    to write (a generated password), so this is checked first, exit 64."""
    shown = f"{option} {path}"
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        usage(f"{shown} is a directory", "a file name")
    if not parent.is_dir():
        what = "does not exist" if not parent.exists() else "is not a directory"
        usage(f"{shown}: {parent} {what}", "a file in an existing directory")
    if path.exists() or path.is_symlink():
        if not path.is_file():
            usage(f"{shown} is not a regular file", "a file name")
        if not os.access(path, os.W_OK):
            usage(f"{shown} is not writable", "a file this user can write")
    elif not os.access(parent, os.W_OK | os.X_OK):
        usage(f"{shown}: directory {parent} is not writable", "a writable directory")


def check_input_dir(path: Path, option: str) -> None:
    """A directory named on the command line must exist (it is never created)."""
    if not path.exists():
        usage(f"{option} {path} does not exist", "an existing directory")
    if not path.is_dir():
        usage(f"{option} {path} is not a directory", "an existing directory")


def setup_logging(verbosity: int) -> None:
    """Log lines go to stderr through the secret scrubber, whatever a caller logs."""
    import logging

    from mailctl.secret import ScrubFilter

    handler = logging.StreamHandler()
    handler.addFilter(ScrubFilter())
    if verbosity:
        fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    else:
        fmt = "%(levelname_lower)s: %(message)s"
        handler.addFilter(_lower_level)
    handler.setFormatter(logging.Formatter(fmt))
    root = logging.getLogger("mailctl")
    root.handlers[:] = [handler]
    root.propagate = False
    root.setLevel({0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG))


def _lower_level(record: object) -> bool:
    record.levelname_lower = record.levelname.lower()  # type: ignore[attr-defined]
    return True
