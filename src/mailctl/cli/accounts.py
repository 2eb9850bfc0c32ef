"""tokens / accounts / serve: temporary accounts handed out by invite tokens.

Store, provider and web imports happen inside the commands so that
`mailctl --version` does not pay for SQLAlchemy, Alembic or Starlette.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mailctl.cli.common import FAILED, PROVIDER, ConfigOpt, JsonOpt, err, fail, load

if TYPE_CHECKING:
    from mailctl.accounts.service import AccountService
    from mailctl.accounts.store import Account, Token
    from mailctl.config.load import Config

tokens_app = typer.Typer(no_args_is_help=True, help="Invite tokens that hand out accounts.")
accounts_app = typer.Typer(no_args_is_help=True, help="Accounts made from tokens or by hand.")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PREFIX = re.compile(r"^[a-z0-9._+-]{0,32}$")
PngOpt = Annotated[Path | None, typer.Option("--png", help="write a PNG file")]
SvgOpt = Annotated[Path | None, typer.Option("--svg", help="write an SVG file")]


def _out(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


@contextmanager
def _service(file: Path | None, as_json: bool = False) -> Iterator[tuple[Config,
                                                                        AccountService]]:
    """Config + store + service; AccountsError becomes `error: reason` and an exit code."""
    from mailctl.accounts.context import open_service
    from mailctl.accounts.errors import AccountsError

    config = load(file, as_json)
    svc = None
    try:
        svc = open_service(config)
        yield config, svc
    except AccountsError as exc:
        fail(exc.reason, PROVIDER if exc.status >= 500 else FAILED)
    finally:
        if svc is not None:
            svc.store.close()
        config.close()


def _token_dict(t: Token, public_url: str | None = None, secret: bool = False) -> dict[str, Any]:
    from mailctl.accounts.expiry import iso

    out: dict[str, Any] = {
        "name": t.name, "domain": t.domain, "prefix": t.prefix, "expiry": t.expiry,
        "maxuse": t.maxuse, "usecount": t.usecount, "valid_until": iso(t.valid_until),
        "disabled": t.disabled, "created": iso(t.created)}
    if secret:
        from mailctl.accounts.qr import dcaccount, invite_url

        out["url"] = invite_url(public_url, t)
        out["qr"] = dcaccount(out["url"])
    return out


def _account_dict(a: Account) -> dict[str, Any]:
    from mailctl.accounts.expiry import iso

    return {"address": a.address, "token": a.token_name, "provider": a.provider,
            "created": iso(a.created), "expires": iso(a.expires), "state": a.state}


def _print_token(d: dict[str, Any]) -> None:
    state = "disabled" if d["disabled"] else "active"
    until = f", valid until {d['valid_until']}" if d["valid_until"] else ""
    print(f"{d['name']}: {d['prefix']}…@{d['domain']}, accounts live {d['expiry']}, "
          f"used {d['usecount']} of {d['maxuse']}, {state}{until}")
    if "url" in d:
        print(f"  url: {d['url']}")


def _domain(config: Config, given: str | None) -> str:
    from mailctl.accounts.context import default_domain
    from mailctl.model import AddressError, normalise_domain

    name = given or default_domain(config)
    if not name:
        fail("several domains are declared: pass --domain (or set accounts.domain)")
    try:
        dom = normalise_domain(name)
    except AddressError as exc:
        fail(str(exc))
    if dom not in config.desired.provider_of:
        fail(f"domain {dom} is not declared in {config.path}")
    return dom


def _expiry(code: str) -> str:
    from mailctl.accounts.expiry import ExpiryError, normalise_expiry

    try:
        return normalise_expiry(code)
    except ExpiryError as exc:
        fail(str(exc))


def _until(text: str | None) -> int | None:
    from mailctl.accounts.expiry import ExpiryError, parse_date

    if text is None:
        return None
    try:
        return parse_date(text)
    except ExpiryError as exc:
        fail(str(exc))


def _prefix(prefix: str) -> str:
    if not _PREFIX.match(prefix) or ".." in prefix or prefix.startswith("."):
        fail(f"invalid prefix {prefix!r}: lower-case letters, digits and . _ + - "
             "(not starting with a dot, no '..'), at most 32 characters")
    return prefix


# -- tokens ---------------------------------------------------------------------------


@tokens_app.command("add")
def tokens_add(
    name: str,
    expiry: Annotated[str, typer.Option(help="account lifetime: 1h, 7d, 2w, 1y, never")] = "1d",
    maxuse: Annotated[int, typer.Option(min=1, help="accounts this token can make")] = 50,
    prefix: Annotated[str, typer.Option(help="local-part prefix of new addresses")] = "tmp.",
    domain: Annotated[str | None, typer.Option(help="domain of new accounts")] = None,
    until: Annotated[str | None, typer.Option(help="token usable until DATE")] = None,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a token; its secret comes from `secrets` (192 bits)."""
    import secrets

    if not _NAME.match(name):
        fail(f"invalid token name {name!r}: letters, digits and . _ - (at most 64)")
    code, valid_until, pre = _expiry(expiry), _until(until), _prefix(prefix)
    with _service(file, as_json) as (config, svc):
        tok = svc.store.add_token(name, secrets.token_urlsafe(24), _domain(config, domain),
                                  pre, code, maxuse, valid_until)
        d = _token_dict(tok, svc.settings.web.public_url, secret=True)
        _out(d) if as_json else _print_token(d)


@tokens_app.command("list")
def tokens_list(file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """All tokens with their use counts (secrets are shown only by `tokens show`)."""
    with _service(file, as_json) as (_, svc):
        rows = [_token_dict(t) for t in svc.store.tokens()]
        if as_json:
            _out(rows)
        elif not rows:
            err("no tokens")
        for d in [] if as_json else rows:
            _print_token(d)


@tokens_app.command("show")
def tokens_show(name: str, file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One token, with its invite URL (which holds the secret)."""
    with _service(file, as_json) as (_, svc):
        d = _token_dict(svc.store.token(name), svc.settings.web.public_url, secret=True)
        _out(d) if as_json else _print_token(d)


@tokens_app.command("mod")
def tokens_mod(
    name: str,
    expiry: Annotated[str | None, typer.Option(help="lifetime of new accounts")] = None,
    maxuse: Annotated[int | None, typer.Option(min=1)] = None,
    prefix: Annotated[str | None, typer.Option()] = None,
    until: Annotated[str | None, typer.Option(help="DATE, or 'none' to remove")] = None,
    enable: Annotated[bool, typer.Option("--enable", help="re-enable the token")] = False,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change a token. The use count is never touched."""
    fields: dict[str, Any] = {}
    if expiry is not None:
        fields["expiry"] = _expiry(expiry)
    if maxuse is not None:
        fields["maxuse"] = maxuse
    if prefix is not None:
        fields["prefix"] = _prefix(prefix)
    if until is not None:
        fields["valid_until"] = None if until.lower() == "none" else _until(until)
    if enable:
        fields["disabled"] = False
    with _service(file, as_json) as (_, svc):
        d = _token_dict(svc.store.update_token(name, **fields))
        _out(d) if as_json else _print_token(d)


@tokens_app.command("disable")
def tokens_disable(name: str, file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Stop a token from making accounts (`tokens mod --enable` undoes it)."""
    with _service(file, as_json) as (_, svc):
        d = _token_dict(svc.store.update_token(name, disabled=True))
        _out(d) if as_json else _print_token(d)


@tokens_app.command("del")
def tokens_del(name: str, file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a token; its accounts live on until they expire."""
    with _service(file, as_json) as (_, svc):
        kept = svc.store.delete_token(name)
        if as_json:
            _out({"deleted": name, "accounts_kept": kept})
        else:
            print(f"deleted token {name}; {kept} of its accounts stay until they expire")


@tokens_app.command("qr")
def tokens_qr(name: str, png: PngOpt = None, svg: SvgOpt = None,
              file: ConfigOpt = None) -> None:
    """The token's DCACCOUNT: code, in the terminal or as PNG/SVG."""
    from mailctl.accounts.qr import dcaccount, invite_url, render

    with _service(file) as (_, svc):
        tok = svc.store.token(name)
        for path in render(dcaccount(invite_url(svc.settings.web.public_url, tok)), png, svg):
            err(f"wrote {path}")


@tokens_app.command("import-mailadm")
def tokens_import(
    db: Annotated[Path, typer.Argument(help="mailadm's SQLite file (mailadm.db)")],
    domain: Annotated[str | None, typer.Option(help="instead of mailadm's mail_domain")] = None,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Bring mailadm's tokens (secrets and use counts kept) and users over."""
    from mailctl.accounts.mailadm_import import import_mailadm

    with _service(file, as_json) as (config, svc):
        rep = import_mailadm(db, svc.store, dict(config.desired.provider_of), domain)
        if as_json:
            _out(rep.as_dict())
            return
        print(f"imported {len(rep.tokens)} tokens and {rep.accounts} accounts")
        for n, why in rep.skipped_tokens:
            err(f"skipped token {n}: {why}")
        for a, why in rep.skipped_accounts:
            err(f"skipped account {a}: {why}")
        if rep.web_endpoint:
            err(f"mailadm's endpoint was {rep.web_endpoint}: serve mailctl there "
                "(accounts.web.public_url) so printed QR codes keep working")


# -- accounts -------------------------------------------------------------------------


@accounts_app.command("add")
def accounts_add(
    address: str,
    token: Annotated[str | None, typer.Option(help="count it against this token")] = None,
    expiry: Annotated[str | None, typer.Option(help="lifetime [default: token's, or never]")]
    = None,
    qr: Annotated[bool, typer.Option("--qr", help="show a DCLOGIN: code, not the password")]
    = False,
    png: PngOpt = None, svg: SvgOpt = None,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create an account by hand. With --qr/--png/--svg the password only goes into the code."""
    from mailctl.accounts.expiry import parse_expiry
    from mailctl.accounts.qr import dclogin, render
    from mailctl.model import AddressError, domain_of, normalise_address

    try:
        addr = normalise_address(address)
    except AddressError as exc:
        fail(str(exc))
    code = _expiry(expiry) if expiry else None
    with _service(file, as_json) as (config, svc):
        if domain_of(addr) not in config.desired.provider_of:
            fail(f"domain {domain_of(addr)} is not declared in {config.path}")
        tok = svc.store.token(token) if token else None
        if tok is not None and tok.domain != domain_of(addr):
            fail(f"token {tok.name} is for {tok.domain}, not {domain_of(addr)}")
        code = code or (tok.expiry if tok else "never")
        creds = svc.create(addr, tok, code, parse_expiry(code))
        show_qr = qr or png is not None or svg is not None
        if show_qr:
            srv = svc.login_servers(domain_of(addr))
            payload = dclogin(addr, creds.password.reveal(), srv["imap"], srv["smtp"],
                              srv["accept_invalid"])
        if as_json:
            d = creds.as_api()
            if show_qr:
                d["qr"] = payload
            _out(d)
        elif show_qr:
            for path in render(payload, png, svg):
                err(f"wrote {path}")
            print(f"created {addr} (expires {d_exp(creds.expires)}); scan the code to log in")
        else:
            print(f"created {addr} (expires {d_exp(creds.expires)})")
            print(f"password: {creds.password.reveal()}")


def d_exp(ts: int | None) -> str:
    from mailctl.accounts.expiry import iso

    return iso(ts) or "never"


@accounts_app.command("list")
def accounts_list(
    token: Annotated[str | None, typer.Option(help="only accounts of this token")] = None,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Accounts in the store (pending ones are being created or await repair)."""
    with _service(file, as_json) as (_, svc):
        rows = [_account_dict(a) for a in svc.store.accounts(token)]
        if as_json:
            _out(rows)
            return
        if not rows:
            err("no accounts")
        for d in rows:
            print(f"{d['address']}  token={d['token'] or '-'}  expires={d['expires'] or 'never'}"
                  f"  {d['state']}")


@accounts_app.command("prune")
def accounts_prune(
    dry_run: Annotated[bool, typer.Option("--dry-run", "-n", help="only show; call nothing")]
    = False,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Delete expired accounts at the provider and from the store; repair interrupted ones."""
    with _service(file, as_json) as (_, svc):
        rep = svc.prune(dry_run=dry_run)
        if as_json:
            _out({"dry_run": dry_run, "removed": [a.address for a in rep.removed],
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
    host: Annotated[str | None, typer.Option(help="[default: accounts.web.host]")] = None,
    port: Annotated[int | None, typer.Option(help="[default: accounts.web.port]")] = None,
    workers: Annotated[int | None, typer.Option(help="worker processes")] = None,
    file: ConfigOpt = None,
) -> None:
    """Run the web API that Delta Chat calls when a DCACCOUNT code is scanned (and the
    web console beside it when the config has a `console:` section)."""
    import logging
    import os

    import uvicorn

    from mailctl.accounts.context import open_store, settings_of

    config = load(file)
    web = settings_of(config).web
    open_store(config).close()  # migrate once, before the workers start
    os.environ["MAILCTL_CONFIG"] = str(config.path.resolve())
    logging.getLogger("mailctl").setLevel(logging.INFO)
    if not logging.getLogger("mailctl").handlers:
        from mailctl.cli.app import _logging

        _logging(1)
    err(f"serving on http://{host or web.host}:{port if port is not None else web.port}")
    uvicorn.run("mailctl.web.serve:combined_from_env", factory=True,  # + the console
                host=host or web.host, port=port if port is not None else web.port,
                workers=workers or web.workers, access_log=False, log_level="warning",
                # uvicorn would believe X-Forwarded-For from 127.0.0.1 by itself; the
                # client address is ours to decide (accounts.web.trusted_proxies)
                proxy_headers=False, forwarded_allow_ips=[])


def register(app: typer.Typer) -> None:
    app.add_typer(tokens_app, name="tokens", help="Invite tokens that hand out accounts.")
    app.add_typer(accounts_app, name="accounts", help="Temporary accounts.")
    app.command("serve")(serve)
