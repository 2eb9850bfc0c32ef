"""`mailctl sandbox up|down|status`: the built-in local mail stack."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mailctl.cli.common import FAILED, ConfigOpt, JsonOpt, fail, load

if TYPE_CHECKING:
    from mailctl.sandbox.stack import Sandbox

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
    str | None, typer.Option("--provider", help="which dms provider of the config to serve")
]


def _sandbox(file: Path | None, state_dir: Path | None, dms_dir: Path | None,
             provider: str | None) -> Sandbox:
    from mailctl.config.load import default_path
    from mailctl.sandbox.stack import Sandbox

    path = file or default_path()
    if dms_dir is None:
        if not path.exists():
            fail(f"no config at {path}: pass -f FILE or --dms-dir DIR")
        config = load(path)
        names = [n for n, p in config.providers.items() if p.type_name == "dms"]
        if provider:
            if provider not in names:
                fail(f"{path} has no dms provider named {provider!r}")
            names = [provider]
        if not names:
            fail(f"{path} declares no provider of type dms for the sandbox to serve")
        prov = config.provider(names[0])
        dms_dir = prov.directory  # type: ignore[attr-defined]
    assert dms_dir is not None
    dms_dir = dms_dir.resolve()
    dms_dir.mkdir(parents=True, exist_ok=True)
    if state_dir is None:
        # Outside $HOME (root's is 0700, the daemons could not enter it), one per
        # served folder so two configs get two sandboxes.
        import hashlib

        from mailctl.sandbox import default_state_dir

        tag = hashlib.sha256(str(dms_dir).encode()).hexdigest()[:8]
        default = default_state_dir()
        state_dir = default.with_name(f"{default.name}-{tag}")
    return Sandbox(state_dir.resolve(), dms_dir)


@app.command()
def up(file: ConfigOpt = None, state_dir: StateOpt = None, dms_dir: DmsOpt = None,
       provider: ProviderOpt = None, as_json: JsonOpt = False) -> None:
    """Start Dovecot (+ Postfix as root) on 127.0.0.1, serving the dms files."""
    from mailctl.sandbox.stack import SandboxError

    sb = _sandbox(file, state_dir, dms_dir, provider)
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
    from mailctl.sandbox.stack import SandboxError

    sb = _sandbox(file, state_dir, dms_dir, provider)
    try:
        sb.down(purge=purge)
    except SandboxError as exc:
        fail(str(exc))
    print("sandbox stopped")


@app.command()
def status(file: ConfigOpt = None, state_dir: StateOpt = None, dms_dir: DmsOpt = None,
           provider: ProviderOpt = None, as_json: JsonOpt = False) -> None:
    """Which daemons run, on which ports."""
    sb = _sandbox(file, state_dir, dms_dir, provider)
    running = _show(sb, as_json)
    if not running:
        raise typer.Exit(FAILED)


def _show(sb: Sandbox, as_json: bool) -> bool:
    st = sb.status()
    data = st.as_dict()
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            print(f"{key:<14} {value}")
    return bool(data.get("running"))
