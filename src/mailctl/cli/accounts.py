"""accounts / serve: temporary accounts, and the web API that hands them out.

The `tokens` group lives in cli/tokens.py, with the helpers both share;
`register` adds all three. Secrets: a generated password goes to stderr once,
to a 0600 file (--secrets-out), or only into a QR code, and on stdout only
with --reveal-password. `serve` binds its port before it says so.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mailctl.cli.common import PROVIDER, ConfigOpt, JsonOpt, err, load
from mailctl.cli.tokens import (
    EXPIRY_HELP,
    PngOpt,
    SvgOpt,
    checked_outputs,
    expiry_code,
    opened,
    print_json,
    store_errors,
    tokens_app,
    usage,
)

accounts_app = typer.Typer(no_args_is_help=True, help="Accounts made from tokens or by hand.")


@accounts_app.command("add")
def accounts_add(
    address: Annotated[str, typer.Argument(help="the new account's address",
                                           show_default=False)],
    token: Annotated[str | None, typer.Option(
        help="count it against this token (and use its lifetime)", show_default="none")] = None,
    expiry: Annotated[str | None, typer.Option(
        help=EXPIRY_HELP, show_default="the token's, else never")] = None,
    qr: Annotated[bool, typer.Option(
        "--qr", help="print a DCLOGIN: code (on stderr) instead of the password")] = False,
    png: PngOpt = None, svg: SvgOpt = None,
    secrets_out: Annotated[Path | None, typer.Option(
        "--secrets-out", help="append `address<TAB>password` to this file (mode 0600) "
                              "instead of printing the password", show_default=False)] = None,
    reveal: Annotated[bool, typer.Option(
        "--reveal-password", help="also put the password (and the DCLOGIN: code) on stdout, "
                                  "in the --json object or as a line")] = False,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create an account by hand; its generated password is shown once.

    The password goes to stderr, or only into the code (--qr/--png/--svg), or only
    into --secrets-out; files are written before the account is made, so a crash
    cannot lose it, and are taken back if it is not made."""
    from mailctl.accounts.handout import hand_over
    from mailctl.model import AddressError, domain_of, normalise_address

    try:
        addr = normalise_address(address)
    except AddressError as exc:
        usage(f"invalid address {address!r}: {exc}")
    code = expiry_code(expiry) if expiry else None
    out = checked_outputs(png, svg, qr, secrets_out)
    config = load(file, as_json)
    if domain_of(addr) not in config.desired.provider_of:
        usage(f"domain {domain_of(addr)} is not declared in {config.path}")
    with opened(config) as svc:
        tok = svc.store.token(token) if token else None
        if tok is not None and tok.domain != domain_of(addr):
            usage(f"--token {tok.name} is for {tok.domain}, not {domain_of(addr)}")
        done = hand_over(svc, addr, tok, code or (tok.expiry if tok else "never"), out)
        creds = done.credentials
        if as_json:
            d = {k: v for k, v in creds.as_api().items() if k != "password"}
            d["token"] = creds.token
            d["files"] = [str(p) for p in done.written]
            if reveal:
                d["password"] = creds.password.reveal()
                if done.dclogin:
                    d["dclogin"] = done.dclogin
            print_json(d)
        else:
            print(f"created {addr} (expires {_when(creds.expires)})")
            if reveal:
                print(f"password: {creds.password.reveal()}")
        if done.dclogin and qr:
            from mailctl.accounts.qr import render

            render(done.dclogin, out=sys.stderr)
        for path in done.written:
            err(f"wrote {path}")
        if secrets_out is not None:
            err(f"password written to {secrets_out}")
        elif done.dclogin:
            err("scan the code to log in; the password is only in the code")
        elif not reveal:
            err(f"password (shown once, stored nowhere): {creds.password.reveal()}")


def _when(ts: int | None) -> str:
    from mailctl.accounts.expiry import iso

    return iso(ts) or "never"


@accounts_app.command("list")
def accounts_list(
    token: Annotated[str | None, typer.Option(
        help="only accounts of this token", show_default="all")] = None,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Accounts in the store (pending ones are being created or await repair)."""
    with opened(load(file, as_json)) as svc:
        rows = [a.as_dict() for a in svc.store.accounts(token)]
        if as_json:
            print_json(rows)
            return
        if not rows:
            err("no accounts")
        for d in rows:
            print(f"{d['address']}  token={d['token'] or '-'}  expires={d['expires'] or 'never'}"
                  f"  {d['state']}")


@accounts_app.command("prune")
def accounts_prune(
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", "-n", help="only show what would go; call nothing, write nothing")] = False,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Delete expired accounts at the provider and from the store; repair interrupted ones.

    `mailctl serve` does this by itself every accounts.prune_interval seconds."""
    with opened(load(file, as_json)) as svc:
        rep = svc.prune(dry_run=dry_run)
        if as_json:
            print_json({"dry_run": dry_run, "removed": [a.address for a in rep.removed],
                  "repaired": [a.address for a in rep.repaired],
                  "failed": [{"address": a.address, "error": e} for a, e in rep.failed]})
        else:
            verb = "would remove" if dry_run else "removed"
            for a in rep.removed:
                print(f"{verb} {a.address} (token {a.token_name or '-'})")
            for a in rep.repaired:
                print(f"{'would undo' if dry_run else 'undid'} interrupted creation of "
                      f"{a.address}")
            for a, e in rep.failed:
                err(f"could not remove {a.address}: {e}")
        if rep.failed:
            raise typer.Exit(PROVIDER)


def serve(
    host: Annotated[str | None, typer.Option(
        help="address to listen on", show_default="accounts.web.host: 127.0.0.1")] = None,
    port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="port to listen on", show_default="accounts.web.port: 3691")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="worker processes", show_default="accounts.web.workers: 1")] = None,
    prune_interval: Annotated[float | None, typer.Option(
        min=0, max=7 * 86400, help="delete expired accounts every this many seconds; 0: "
        "never", show_default="accounts.prune_interval: 600")] = None,
    file: ConfigOpt = None,
) -> None:
    """Run the web API that Delta Chat calls when a DCACCOUNT code is scanned, and prune
    expired accounts on schedule (one worker on one host at a time)."""
    from mailctl.accounts.context import open_store, settings_of
    from mailctl.accounts.serving import BindError, bind, run
    from mailctl.accounts.web import configure_logging

    config = load(file)
    settings = settings_of(config)
    try:  # the port first: a bad one must not leave a new store behind
        listener = bind(host or settings.web.host,
                        port if port is not None else settings.web.port)
    except BindError as exc:
        usage(str(exc))
    with store_errors():
        open_store(config).close()  # migrate once, before the workers start
    interval = prune_interval if prune_interval is not None else settings.prune_interval
    n = workers or settings.web.workers
    configure_logging()
    err(f"serving on {listener.url} ({n} worker{'s' if n != 1 else ''}; "
        + (f"expired accounts are pruned every {interval:g} s)" if interval else
           "not pruning: run `mailctl accounts prune` on a schedule)"))
    run(listener, str(config.path.resolve()), n, interval)


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens", help="Invite tokens that hand out accounts.")
    app.add_typer(accounts_app, name="accounts", help="Temporary accounts.")
    app.command("serve")(serve)
