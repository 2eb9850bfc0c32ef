"""Assembles the typer app. Heavy imports stay inside the commands."""

from __future__ import annotations

import importlib

import typer

from mailctl import __version__
from mailctl.cli import dns, provision, sandbox
from mailctl.cli.common import USAGE

app = typer.Typer(
    name="mailctl",
    help="Run a mail domain as code: declare it in YAML, plan, apply.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        print(f"mailctl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True, help="show the version"
    ),
    verbose: int = typer.Option(
        0, "--verbose", "-v", count=True, help="log what is done to stderr (-vv: debug)"
    ),
) -> None:
    """mailctl — mail domains as code."""
    _logging(verbose)


def _logging(verbosity: int) -> None:
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


provision.register(app)
app.add_typer(sandbox.app, name="sandbox", help="A real Dovecot + Postfix on loopback.")

app.add_typer(dns.app, name="dns", help="The records a mail domain needs, checked live.")
app.add_typer(dns.dkim_app, name="dkim", help="DKIM keys for self-hosted domains.")

# Capabilities that add commands register themselves: each module has `register(app)`.
for _name in ("accounts", "sync", "probe", "reports"):
    try:
        _mod = importlib.import_module(f"mailctl.cli.{_name}")
    except ModuleNotFoundError as _exc:  # not built yet
        if _exc.name != f"mailctl.cli.{_name}":
            raise
        continue
    _mod.register(app)


def run() -> int:
    """Run with our exit codes: usage errors are 64, so 2 can mean "changes" as in terraform.

    Click's exceptions are matched by shape (`show` + `exit_code`) because typer
    vendors its own copy of click from 0.25 on."""
    try:
        rv = app(standalone_mode=False)
    except (typer.Exit, typer.Abort) as exc:
        if isinstance(exc, typer.Abort):
            typer.echo("aborted", err=True)
            return 130
        return int(getattr(exc, "exit_code", 0))
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        show = getattr(exc, "show", None)
        if callable(show) and hasattr(exc, "exit_code"):
            show()
            return USAGE if int(exc.exit_code) == 2 else int(exc.exit_code)
        if type(exc).__name__ in ("Exit", "Abort"):  # click's own, from a vendored copy
            return int(getattr(exc, "exit_code", 1))
        raise
    return rv if isinstance(rv, int) else 0
