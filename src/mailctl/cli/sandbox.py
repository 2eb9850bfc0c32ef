"""`mailctl sandbox up|down|status`: the built-in local mail stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mailctl.cli.common import FAILED, ConfigOpt, JsonOpt, err, fail, json_errors, load, usage

if TYPE_CHECKING:
    from mailctl.sandbox import Ports, Sandbox

app = typer.Typer(no_args_is_help=True)

StateOpt = Annotated[
    Path | None,
    typer.Option("--state-dir", help="where the daemons' config, mail and logs live "
                 "[default: /var/tmp/mailctl-sandbox-UID-HASH, one per dms folder]",
                 show_default=False),
]
DmsOpt = Annotated[
    Path | None,
    typer.Option("--dms-dir", help="docker-mailserver config folder to serve "
                 "[default: the config's dms provider path]", show_default=False),
]
ProviderOpt = Annotated[
    str | None, typer.Option("--provider", help="which dms provider of the config to serve "
                             "[default: the first]", show_default=False)
]


def _sandbox(file: Path | None, state_dir: Path | None, dms_dir: Path | None,
             provider: str | None, ports: str | None = None, *, create: bool = False
             ) -> Sandbox:
    """The sandbox for the config's (or --dms-dir's) folder.

    Only `up` with a config may create the config's dms folder (a new config's
    folder does not exist yet). A --dms-dir is a folder to serve, so it must
    exist; `down` and `status` never create anything."""
    from mailctl.config.load import default_path
    from mailctl.sandbox import for_folder

    parsed_ports = _ports(ports) if ports else None  # the command line first
    path = file or default_path()
    if dms_dir is not None:
        dms_dir = dms_dir.expanduser().absolute()
        if not dms_dir.is_dir():
            what = "is not a directory" if dms_dir.exists() else "does not exist"
            usage(f"--dms-dir {dms_dir} {what}",
                  "the docker-mailserver config folder a sandbox serves")
    else:
        if file is None and not path.exists():
            usage(f"no config at {path}", "-f FILE, $MAILCTL_CONFIG, or --dms-dir DIR")
        config = load(path)
        names = [n for n, p in config.providers.items() if p.type_name == "dms"]
        if provider:
            if provider not in names:
                usage(f"--provider {provider!r}: {path} has no dms provider of that name",
                      "one of " + (", ".join(names) or "(none)"))
            names = [provider]
        if not names:
            fail(f"{path} declares no provider of type dms for the sandbox to serve")
        prov = config.provider(names[0])
        dms_dir = prov.directory  # type: ignore[attr-defined]
        assert dms_dir is not None
        if create and not dms_dir.exists():
            if not dms_dir.parent.is_dir():
                fail(f"cannot create the dms folder {dms_dir}: {dms_dir.parent} does not "
                     f"exist (provider {names[0]!r} path, relative to {path})")
            dms_dir.mkdir()
    if state_dir is not None:
        state_dir = state_dir.expanduser()
    return for_folder(dms_dir, state_dir, parsed_ports)


def _ports(text: str) -> Ports:
    from mailctl.sandbox import Ports

    try:
        values = [int(p) for p in text.split(",")]
        if len(values) != 5 or not all(0 < v < 65536 for v in values):
            raise ValueError
    except ValueError:
        usage(f"--ports {text!r}", "five port numbers 1-65535: SMTP,SUBMISSION,IMAP,IMAPS,LMTP")
    return Ports(*values)


@app.command()
def up(file: ConfigOpt = None, state_dir: StateOpt = None, dms_dir: DmsOpt = None,
       provider: ProviderOpt = None, as_json: JsonOpt = False,
       ports: Annotated[str | None, typer.Option(
           "--ports", envvar="MAILCTL_SANDBOX_PORTS", metavar="SMTP,SUB,IMAP,IMAPS,LMTP",
           help="five ports on 127.0.0.1 [default: 10025,10587,10143,10993,10024]",
           show_default=False)] = None) -> None:
    """Start Dovecot (+ Postfix as root) on 127.0.0.1, serving the dms files."""
    from mailctl.sandbox import SandboxError

    json_errors(as_json)
    sb = _sandbox(file, state_dir, dms_dir, provider, ports, create=True)
    try:
        sb.up()
    except SandboxError as exc:
        fail(str(exc))
    _show(sb, as_json)


@app.command()
def down(file: ConfigOpt = None, state_dir: StateOpt = None, dms_dir: DmsOpt = None,
         provider: ProviderOpt = None,
         purge: Annotated[bool, typer.Option("--purge", help="also delete mail and logs")] = False
         ) -> None:
    """Stop exactly the sandbox's own processes."""
    from mailctl.sandbox import SandboxError

    sb = _sandbox(file, state_dir, dms_dir, provider)
    was_running = sb.status().any_running
    try:
        sb.down(purge=purge)
    except SandboxError as exc:
        fail(str(exc))
    if was_running:
        print(f"sandbox stopped (was serving {sb.dms_dir})")
    else:
        print(f"no sandbox was running for {sb.dms_dir}")
    if purge:
        print(f"removed {sb.state_dir}")


@app.command()
def status(file: ConfigOpt = None, state_dir: StateOpt = None, dms_dir: DmsOpt = None,
           provider: ProviderOpt = None, as_json: JsonOpt = False) -> None:
    """Which daemons run, on which ports."""
    json_errors(as_json)
    sb = _sandbox(file, state_dir, dms_dir, provider)
    running = _show(sb, as_json)
    if not running:
        raise typer.Exit(FAILED)


def _show(sb: Sandbox, as_json: bool) -> bool:
    st = sb.status()
    data = st.as_dict()
    data["dms_dir"] = data.get("dms_dir") or str(sb.dms_dir)
    started = st.host is not None  # a state file exists: it was started at least once
    data["started"] = started
    if as_json:
        print(json.dumps(data, indent=2, default=str))
        return bool(data.get("running"))
    if not started:
        err(f"no sandbox serves {sb.dms_dir} (none was started in {sb.state_dir}); "
            "`mailctl sandbox up` starts one")
        return False
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"sandbox serving {data.get('dms_dir')}")
    for col in ("daemon", "state", "pid", "ports"):
        table.add_column(col)
    ports = data.get("ports") or {}
    served = {"dovecot": ("imap", "imaps", "lmtp"), "postfix": ("smtp", "submission")}
    for name, d in (data.get("daemons") or {}).items():
        where = ", ".join(f"{p} {data.get('host')}:{ports[p]}" for p in served.get(name, ())
                          if p in ports)
        table.add_row(name, "[green]running[/]" if d.get("running") else "[red]stopped[/]",
                      str(d.get("pid") or "-"), where)
    console = Console()
    console.print(table)
    if not data.get("postfix"):
        console.print(f"postfix: off ({data.get('postfix_disabled_reason')})")
    console.print(f"TLS CA: {data.get('ca_file')}   state: {data.get('state_dir')}")
    return bool(data.get("running"))
