"""passwd / app-passwords: what the YAML deliberately does not hold, per mailbox.

The work is in `mailctl.credentials` (the console calls the same functions).
A new secret goes to stderr, shown once, or with --secrets-out to a 0600
file; never to stdout, so `--json` output and pipes stay free of secrets.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mailctl.cli.common import FAILED, USAGE, ConfigOpt, JsonOpt, err, fail, load

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.secret import Secret

app_passwords_app = typer.Typer(no_args_is_help=True,
                                help="Per-device passwords of a mailbox: add, list, revoke.")

AddressArg = Annotated[str, typer.Argument(help="the mailbox, e.g. alice@example.org",
                                           show_default=False)]
SecretsOutOpt = Annotated[Path | None, typer.Option(
    "--secrets-out", help="append `address<TAB>password` to this file (mode 0600) instead "
    "of showing the password on stderr", show_default=False)]


def _address(text: str) -> str:
    from mailctl.model import AddressError, normalise_address

    try:
        addr = normalise_address(text)
    except AddressError as exc:
        fail(f"{exc} (expected a mailbox address like alice@example.org)", USAGE)
    if addr.startswith("@"):
        fail(f"{text!r} is a catch-all, not a mailbox (expected alice@example.org)", USAGE)
    return addr


def _secrets_out(path: Path | None) -> None:
    """Checked before anything changes: a password must never be made and then lost."""
    if path is None:
        return
    if path.is_dir():
        fail(f"--secrets-out {path} is a directory (expected a file)", USAGE)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        fail(f"--secrets-out {path}: directory {parent} does not exist", USAGE)
    import os

    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail(f"--secrets-out {path} is not writable", USAGE)


def _failed(exc: Exception) -> NoReturn:
    from mailctl.cli.common import provider_failure
    from mailctl.credentials import CredentialsError
    from mailctl.providers.base import ErrorKind, ProviderError
    from mailctl.secret import scrub

    if isinstance(exc, ProviderError):
        # The provider answered "no" (unsupported, invalid, not there): the request's
        # fault, exit 1; it could not be reached or refused mailctl's key: exit 3.
        if exc.kind in (ErrorKind.INVALID, ErrorKind.CONFLICT, ErrorKind.NOT_FOUND):
            fail(scrub(str(exc)), FAILED)
        provider_failure(exc)
    if isinstance(exc, CredentialsError):
        fail(str(exc), FAILED)
    raise exc


def _show_secret(address: str, secret: Secret, what: str, out: Path | None) -> None:
    if out is not None:
        from mailctl.provision.engine import write_secrets

        write_secrets(out, {address: secret})
        err(f"{what} for {address} written to {out}")
    else:
        err(f"{what} for {address} (shown once, not stored anywhere else):")
        err(f"  {secret.reveal()}")


def _config(file: Path | None, as_json: bool) -> Config:
    return load(file, as_json)


def passwd(
    address: AddressArg,
    from_ref: Annotated[str | None, typer.Option(
        "--from", help="set this password, a secret reference: '${env:NAME}' or "
        "'${file:path}' [default: generate one]", show_default=False)] = None,
    secrets_out: SecretsOutOpt = None,
    file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Reset a mailbox's password (operator reset): generated and shown once, or --from."""
    from mailctl import credentials
    from mailctl.config.refs import RefError, Resolver

    addr = _address(address)
    _secrets_out(secrets_out)
    if from_ref is not None and secrets_out is not None:
        fail("--secrets-out only applies to a generated password (drop it or --from)", USAGE)
    config = _config(file, as_json)
    given = None
    if from_ref is not None:
        try:
            given = Resolver(config.base_dir).resolve(from_ref)
        except RefError as exc:
            hint = f"; {exc.hint}" if exc.hint else ""
            fail(f"--from: {exc}{hint}", USAGE)
    try:
        secret = credentials.reset_password(config, addr, given)
    except Exception as exc:
        _failed(exc)
    finally:
        config.close()
    if as_json:
        print(json.dumps({"address": addr, "changed": True, "generated": given is None,
                          "secrets_out": str(secrets_out) if secrets_out else None}))
    else:
        print(f"password of {addr} changed" + (f" (from {from_ref})" if given else ""))
    if given is None:
        _show_secret(addr, secret, "new password", secrets_out)


@app_passwords_app.command("add")
def app_add(
    address: AddressArg,
    name: Annotated[str, typer.Option("--name", "-n", help="the device or app it is for, "
                                      "e.g. 'Phone' (1-64 characters)")],
    secrets_out: SecretsOutOpt = None,
    file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an app password; it is shown once (stderr) or written to --secrets-out."""
    from mailctl import credentials

    addr = _address(address)
    _secrets_out(secrets_out)
    config = _config(file, as_json)
    try:
        entry, secret = credentials.add_app_password(config, addr, name)
    except Exception as exc:
        _failed(exc)
    finally:
        config.close()
    if as_json:
        print(json.dumps({"address": addr, **entry.as_dict(),
                          "secrets_out": str(secrets_out) if secrets_out else None}))
    else:
        print(f"created app password {entry.id} ({entry.name}) for {addr}")
    _show_secret(addr, secret, f"app password {entry.name!r}", secrets_out)


def _when(ts: float | None) -> str:
    return "-" if not ts else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


@app_passwords_app.command("list")
def app_list(address: AddressArg, file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """The mailbox's app passwords: id, name, created, last used (never the secrets)."""
    from mailctl import credentials

    addr = _address(address)
    config = _config(file, as_json)
    try:
        rows = credentials.list_app_passwords(config, addr)
    except Exception as exc:
        _failed(exc)
    finally:
        config.close()
    if as_json:
        print(json.dumps({"address": addr, "app_passwords": [r.as_dict() for r in rows]},
                         indent=2))
        return
    if not rows:
        err(f"{addr} has no app passwords")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "name", "created (UTC)", "last used (UTC)", box=None)
    for r in rows:
        table.add_row(r.id, r.name, _when(r.created), _when(r.last_used))
    Console(file=sys.stdout, no_color=True, width=200).print(table)


@app_passwords_app.command("revoke")
def app_revoke(
    address: AddressArg,
    app_id: Annotated[str, typer.Argument(help="the id `app-passwords list` shows",
                                          show_default=False)],
    file: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Revoke one app password; the device using it can no longer log in."""
    from mailctl import credentials

    addr = _address(address)
    config = _config(file, as_json)
    try:
        entry = credentials.revoke_app_password(config, addr, app_id)
    except Exception as exc:
        _failed(exc)
    finally:
        config.close()
    if as_json:
        print(json.dumps({"address": addr, "revoked": entry.as_dict()}))
    else:
        print(f"revoked app password {entry.id} ({entry.name}) of {addr}")


def register(app: typer.Typer) -> None:
    app.command("passwd")(passwd)
    app.add_typer(app_passwords_app, name="app-passwords",
                  help="Per-device passwords of a mailbox: add, list, revoke.")
