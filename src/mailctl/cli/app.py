"""Assembles the typer app. Heavy imports stay inside the commands.

Each capability's module has `register(app)` and imports nothing heavy at
module level, so building the whole command tree costs a few milliseconds;
`mailctl --version` never gets here at all (see mailctl.cli.main).
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

import typer

from mailctl import __version__
from mailctl.cli import (
    accounts,
    console,
    dns,
    domain,
    jobs,
    move,
    passwords,
    probe,
    provision,
    reports,
    sandbox,
    starter,
    sync,
)
from mailctl.cli.common import INTERRUPTED, OK, USAGE, json_error

if TYPE_CHECKING:
    import click

app = typer.Typer(
    name="mailctl",
    help="Run a mail domain as code: declare it in YAML, plan, apply.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion
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
    from mailctl.cli.common import setup_logging

    setup_logging(verbose)


provision.register(app)
starter.register(app)
accounts.register(app)
sync.register(app)
app.add_typer(sandbox.app, name="sandbox", help="A real Dovecot + Postfix on loopback.")
app.add_typer(dns.app, name="dns", help="The records a mail domain needs, checked live.")
app.add_typer(dns.dkim_app, name="dkim", help="DKIM keys for self-hosted domains.")
app.add_typer(domain.app, name="domain", help="Back up and restore a whole mail domain.")
move.register(app)
probe.register(app)
reports.register(app)
console.register(app)
passwords.register(app)
jobs.register(app)


# -- help text: metavars a person can read ----------------------------------------------

_RICH = bool(getattr(typer.core, "HAS_RICH", False)) and app.rich_markup_mode == "rich"
_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH",
          "datetime": "DATETIME"}


def _label(param: Any) -> str | None:
    """TEXT, PATH, INTEGER or [a|b] for a value; "" for a flag; None: leave as it is.

    typer >= 0.25 shows the Python annotation (`<bool>`, `<list[str]>`); this puts
    back what click users know, once for every command instead of a metavar on
    each option."""
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return ""
    desc = getattr(param, "type_descriptor", None)
    if desc is None:  # an older typer: click's own metavars are already right
        return None
    if desc.is_choice and desc.choices:
        return "[" + "|".join(str(getattr(c, "value", c)) for c in desc.choices) + "]"
    if desc.is_path:
        return str(desc.path_type).upper() if desc.path_type else "PATH"
    tp = desc.annotation
    if desc.is_list:
        from typing import get_args

        args = get_args(tp)
        tp = args[0] if args else str
    name = getattr(tp, "__name__", None)
    return _NAMES.get(name or "", (name or "VALUE").upper())


def tidy_help(cmd: Any, args: list[str] | None = None) -> Any:
    """Set readable metavars on the options and arguments of `cmd` and below: of
    every command, or (given the command line) only of those it goes through, which
    keeps the cost off a normal run (~5 ms for the whole tree)."""
    for param in cmd.params:
        help_text = getattr(param, "help", None)
        if help_text and "[" in help_text and _RICH and "\\[" not in help_text:
            # "[default: ...]" in a help text is ours, not rich markup (which ate it).
            # (rich.markup.escape would do the same, for 0.2 s of imports per run.)
            param.help = help_text.replace("[", "\\[")
        label = _label(param)
        if label is None:
            continue
        if param.param_type_name == "argument":
            if param.metavar is None:
                param.metavar = (param.name or "ARG").upper()
            # typer prints an argument's type beside its name without looking at
            # the metavar; show the element type instead of the annotation.
            param.display_type_rich = (
                lambda ctx, _label=label: _label)
        elif param.metavar is None:
            param.metavar = label
    # --help is made on first use, from a context; make it now (it is cached) and
    # give it the flag's empty metavar too.
    ctx = cmd.context_class(cmd, info_name=cmd.name, **(cmd.context_settings or {}))
    help_option = cmd.get_help_option(ctx)
    if help_option is not None and help_option.metavar is None:
        help_option.metavar = ""
    subs = getattr(cmd, "commands", {})
    if args is None:
        for sub in subs.values():
            tidy_help(sub)
    else:
        for i, arg in enumerate(args):
            if arg in subs:
                tidy_help(subs[arg], args[i + 1:])
                break
    return cmd


def _entry_name(info: typer.models.CommandInfo | typer.models.TyperInfo) -> str | None:
    if isinstance(info, typer.models.TyperInfo):
        name = info.name
        if not isinstance(name, str) and info.typer_instance is not None:
            name = info.typer_instance.info.name
        return name if isinstance(name, str) else None
    if isinstance(info.name, str):
        return info.name
    return typer.main.get_command_name(info.callback.__name__) if info.callback else None


def _only(tree: typer.Typer, args: list[str]) -> typer.Typer | None:
    """`tree` with only the branch `args` names, or None when no command matches.

    Typer builds every command's parameters from its signature at each start
    (type hints evaluated, ~100 functions): 0.3 s of CPU for each run of any
    command, measured, a quarter of a no-change `dns plan` of 100 zones. A
    command line that names its command needs only that branch; anything else
    (no command, an option first, a mistyped name, completion) gets the whole
    tree, so help, suggestions and completion are unchanged."""
    import copy

    if not args or args[0].startswith("-"):
        return None
    commands = [c for c in tree.registered_commands if _entry_name(c) == args[0]]
    groups = [g for g in tree.registered_groups if _entry_name(g) == args[0]]
    if len(commands) + len(groups) != 1:
        return None
    if groups and groups[0].typer_instance is not None:
        inner = _only(groups[0].typer_instance, args[1:])
        if inner is not None:
            groups = [copy.copy(groups[0])]
            groups[0].typer_instance = inner
    pruned = copy.copy(tree)
    pruned.registered_commands, pruned.registered_groups = commands, groups
    return pruned


def command(args: list[str] | None = None) -> click.Command:
    """The click command tree mailctl runs (and its tests inspect); `args`: build and
    tidy only the commands this command line uses."""
    tree = app
    if args and "_MAILCTL_COMPLETE" not in os.environ:
        tree = _only(app, args) or app
    cmd: click.Command = tidy_help(typer.main.get_command(tree), args)
    return cmd


def run(argv: list[str] | None = None) -> int:
    """Run with our exit codes: usage errors are 64, so 2 can mean "changes" as in terraform.

    Click's exceptions are matched by shape (`show` + `exit_code`) because typer
    vendors its own copy of click from 0.25 on."""
    args = sys.argv[1:] if argv is None else argv
    wants_json = "--json" in args
    try:
        rv = command(args).main(args, prog_name="mailctl", standalone_mode=False)
    except (typer.Exit, typer.Abort) as exc:
        if isinstance(exc, typer.Abort):
            typer.echo("aborted", err=True)
            return INTERRUPTED
        return int(getattr(exc, "exit_code", OK))
    except KeyboardInterrupt:
        if wants_json:
            json_error("interrupted", "interrupted", INTERRUPTED)
        typer.echo("interrupted", err=True)
        return INTERRUPTED
    except Exception as exc:
        show = getattr(exc, "show", None)
        if callable(show) and hasattr(exc, "exit_code"):
            code = USAGE if int(exc.exit_code) == 2 else int(exc.exit_code)
            fmt = getattr(exc, "format_message", None)
            message = str(fmt() if callable(fmt) else exc)
            if wants_json:
                json_error("usage" if code == USAGE else "failed", message, code)
            ctx = getattr(exc, "ctx", None)
            if code == USAGE and ctx is not None:
                # One line, like every other usage error (docs/cli.md), not click's box.
                where = getattr(ctx, "command_path", "mailctl")
                typer.echo(f"error: {message.rstrip('.')} (see '{where} --help')", err=True)
            else:
                show()
            return code
        if type(exc).__name__ in ("Exit", "Abort"):  # click's own, from a vendored copy
            return int(getattr(exc, "exit_code", 1))
        raise
    return rv if isinstance(rv, int) else OK
