"""tokens: invite tokens, and the helpers the accounts commands share (cli/accounts.py).

Store, provider and web imports happen inside the commands so that
`mailctl --version` does not pay for SQLAlchemy, Alembic or Starlette.
Every check of the command line (values, output files) comes before the
store is opened: a usage error (64) leaves no trace. An invite URL holds the
token's secret; it is printed where the user asked for it (that is what
`tokens add` and `tokens rotate` are for), once unless the store keeps it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mailctl.cli.common import FAILED, PROVIDER, USAGE, ConfigOpt, JsonOpt, err, fail, load

if TYPE_CHECKING:
    from mailctl.accounts.handout import Issued, Outputs
    from mailctl.accounts.model import Token
    from mailctl.accounts.service import AccountService
    from mailctl.config.load import Config

tokens_app = typer.Typer(no_args_is_help=True, help="Invite tokens that hand out accounts.")

MAXUSE_MAX = 1_000_000_000  # fits the store's INTEGER column on every database
EXPIRY_HELP = "lifetime of each new account: a number and s, min, h, d, w, mo or y, or never"
NameArg = Annotated[str, typer.Argument(help="the token's name", show_default=False)]
PngOpt = Annotated[Path | None, typer.Option(
    "--png", help="write the QR code to this PNG file (mode 0600: it holds the secret)",
    show_default=False)]
SvgOpt = Annotated[Path | None, typer.Option(
    "--svg", help="write the QR code to this SVG file (mode 0600: it holds the secret)",
    show_default=False)]
QrOpt = Annotated[bool, typer.Option("--qr", help="also print the QR code in the terminal")]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def usage(message: str) -> NoReturn:
    fail(message, USAGE)


@contextmanager
def store_errors() -> Iterator[None]:
    """AccountsError becomes `error: reason` and its exit code."""
    from mailctl.accounts.errors import AccountsError, StoreUnavailable

    try:
        yield
    except AccountsError as exc:
        local = isinstance(exc, StoreUnavailable) and exc.local
        fail(exc.reason, PROVIDER if exc.status >= 500 and not local else FAILED)


@contextmanager
def opened(config: Config) -> Iterator[AccountService]:
    """The store and service of a loaded config, closed afterwards."""
    from mailctl.accounts.context import open_service

    svc = None
    try:
        with store_errors():
            svc = open_service(config)
            yield svc
    finally:
        if svc is not None:
            svc.store.close()
        config.close()


def _token_dict(t: Token) -> dict[str, Any]:
    return t.as_dict(time.time())


def _print_token(d: dict[str, Any]) -> None:
    until = f", valid until {d['valid_until']}" if d["valid_until"] else ""
    print(f"{d['name']}: {d['prefix']}…@{d['domain']}, accounts live {d['expiry']}, "
          f"used {d['usecount']} of {d['maxuse']}, {d['state']}{until}")
    if "url" in d:
        print(f"  url: {d['url']}")


def _not_stored(name: str) -> str:
    return (f"the secret of token {name} is not stored (accounts.token_secrets: hashed), "
            "so its URL cannot be printed again; `mailctl tokens rotate "
            f"{name} [--png FILE]` issues a new one (the old URL and printed codes stop "
            "working)")


def _domain(config: Config, given: str | None) -> str:
    from mailctl.accounts.context import default_domain
    from mailctl.model import AddressError, normalise_domain

    name = given or default_domain(config)
    if not name:
        usage("several domains are declared: pass --domain (or set accounts.domain)")
    try:
        dom = normalise_domain(name)
    except AddressError as exc:
        usage(f"--domain: {exc}")
    if dom not in config.desired.provider_of:
        usage(f"--domain {dom} is not declared in {config.path} (expected one of: "
               f"{', '.join(sorted(config.desired.provider_of)) or 'none'})")
    return dom


def expiry_code(code: str) -> str:
    from mailctl.accounts.expiry import ExpiryError, normalise_expiry

    try:
        return normalise_expiry(code)
    except ExpiryError as exc:
        usage(f"--expiry: {exc}")


def _until(text: str) -> int:
    from mailctl.accounts.expiry import ExpiryError, parse_until

    try:
        return parse_until(text, time.time())
    except ExpiryError as exc:
        usage(f"--until: {exc}")


def _valid(check: Any, value: str) -> str:
    try:
        return str(check(value))
    except ValueError as exc:
        usage(str(exc))


def checked_outputs(png: Path | None, svg: Path | None, qr: bool = False,
             secrets_out: Path | None = None) -> Outputs:
    """Every file the command will write, checked before anything is made."""
    from mailctl.accounts.handout import Outputs
    from mailctl.accounts.qr import check_output

    for option, path in (("--png", png), ("--svg", svg), ("--secrets-out", secrets_out)):
        why = check_output(path) if path is not None else None
        if why:
            usage(f"{option} {path}: {why} (expected a writable file in an existing "
                   "directory)")
    return Outputs(png=png, svg=svg, secrets_out=secrets_out, terminal=qr)


def _issued(issued: Issued, svc: AccountService, qr: bool, as_json: bool) -> None:
    """Print a new invite URL (and code) once."""
    from mailctl.accounts.qr import dcaccount, render

    d = _token_dict(issued.token)
    d["url"], d["qr"] = issued.url, dcaccount(issued.url)
    print_json(d) if as_json else _print_token(d)
    if qr:
        render(d["qr"], out=sys.stderr if as_json else sys.stdout)
    for path in issued.written:
        err(f"wrote {path}")
    if svc.settings.token_secrets == "hashed":
        err("note: the URL holds the token's secret and is shown only now (the store keeps "
            f"its hash); `mailctl tokens rotate {d['name']}` issues a new one if it is lost")


@tokens_app.command("add")
def tokens_add(
    name: NameArg,
    expiry: Annotated[str, typer.Option(help=EXPIRY_HELP)] = "1d",
    maxuse: Annotated[int, typer.Option(min=1, max=MAXUSE_MAX,
                                        help="accounts this token can make in all")] = 50,
    prefix: Annotated[str, typer.Option(help="start of every new address")] = "tmp.",
    domain: Annotated[str | None, typer.Option(
        help="domain of new accounts",
        show_default="accounts.domain, else the only declared one")] = None,
    until: Annotated[str | None, typer.Option(
        help="the token stops working after DATE (YYYY-MM-DD: end of that day, UTC; or an "
             "ISO 8601 time)", show_default="never")] = None,
    qr: QrOpt = False, png: PngOpt = None, svg: SvgOpt = None,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Create a token and show its invite URL (192 random bits).

    With `accounts.token_secrets: hashed` (the default) the URL is shown only now:
    keep it, or write the code with --png/--svg."""
    from mailctl.accounts.handout import issue_token
    from mailctl.accounts.model import check_prefix, check_token_name

    _valid(check_token_name, name)
    code, pre = expiry_code(expiry), _valid(check_prefix, prefix)
    valid_until = _until(until) if until is not None else None
    out = checked_outputs(png, svg, qr)
    config = load(file, as_json)
    dom = _domain(config, domain)
    with opened(config) as svc:
        _issued(issue_token(svc, name, dom, pre, code, maxuse, valid_until, out), svc, qr,
                as_json)


@tokens_app.command("list")
def tokens_list(file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """All tokens with their use counts and state: active, exhausted, expired or
    disabled (only active ones make accounts). Secrets are never shown here."""
    with opened(load(file, as_json)) as svc:
        toks = svc.store.tokens()
        rows = [_token_dict(t) for t in toks]
        if as_json:
            print_json(rows)
        elif not rows:
            err("no tokens")
        for d in [] if as_json else rows:
            _print_token(d)
        stored = [t.name for t in toks if t.secret_stored]
        if svc.settings.token_secrets == "hashed" and stored:
            err(f"note: {', '.join(stored)} still {'has' if len(stored) == 1 else 'have'} "
                "its secret stored (made before accounts.token_secrets: hashed); `mailctl "
                "tokens mod NAME --forget-secret` keeps only the hash")


@tokens_app.command("show")
def tokens_show(name: NameArg, file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """One token, with its invite URL (which holds the secret) if the secret is stored."""
    from mailctl.accounts.qr import dcaccount, invite_url

    with opened(load(file, as_json)) as svc:
        tok = svc.store.token(name)
        d = _token_dict(tok)
        if tok.secret is not None:
            d["url"] = invite_url(svc.settings.web.public_url, tok)
            d["qr"] = dcaccount(d["url"])
        print_json(d) if as_json else _print_token(d)
        if tok.secret is None:
            err(f"note: {_not_stored(name)}")


@tokens_app.command("mod")
def tokens_mod(
    name: NameArg,
    expiry: Annotated[str | None, typer.Option(
        help=EXPIRY_HELP + " (accounts made before keep theirs)", show_default="unchanged")] = None,
    maxuse: Annotated[int | None, typer.Option(
        min=1, max=MAXUSE_MAX, help="accounts this token can make in all",
        show_default="unchanged")] = None,
    prefix: Annotated[str | None, typer.Option(
        help="start of every new address", show_default="unchanged")] = None,
    until: Annotated[str | None, typer.Option(
        help="the token stops working after DATE (a future YYYY-MM-DD or ISO 8601 time), or "
             "'none' to remove the end date", show_default="unchanged")] = None,
    enable: Annotated[bool, typer.Option("--enable", help="re-enable a disabled token")] = False,
    forget_secret: Annotated[bool, typer.Option(
        "--forget-secret", help="keep only the secret's hash: its URL keeps working but "
                                "cannot be printed again")] = False,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Change a token. The use count is never touched."""
    from mailctl.accounts.model import check_prefix

    fields: dict[str, Any] = {}
    if expiry is not None:
        fields["expiry"] = expiry_code(expiry)
    if maxuse is not None:
        fields["maxuse"] = maxuse
    if prefix is not None:
        fields["prefix"] = _valid(check_prefix, prefix)
    if until is not None:
        fields["valid_until"] = None if until.strip().lower() == "none" else _until(until)
    if enable:
        fields["disabled"] = False
    with opened(load(file, as_json)) as svc:
        tok = svc.store.update_token(name, **fields)
        if forget_secret:
            tok = svc.store.forget_secret(name)
        d = _token_dict(tok)
        print_json(d) if as_json else _print_token(d)


@tokens_app.command("rotate")
def tokens_rotate(name: NameArg, qr: QrOpt = False, png: PngOpt = None, svg: SvgOpt = None,
                  file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Give a token a new secret and show its new URL once: the old URL and every code
    printed with it stop working at once. Use count and settings stay."""
    from mailctl.accounts.handout import rotate_token

    out = checked_outputs(png, svg, qr)
    with opened(load(file, as_json)) as svc:
        issued = rotate_token(svc, name, out)
        err(f"token {name} has a new secret: its old URL and codes no longer work")
        _issued(issued, svc, qr, as_json)


@tokens_app.command("disable")
def tokens_disable(name: NameArg, file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Stop a token from making accounts (`tokens mod --enable` undoes it)."""
    with opened(load(file, as_json)) as svc:
        d = _token_dict(svc.store.update_token(name, disabled=True))
        print_json(d) if as_json else _print_token(d)


@tokens_app.command("del")
def tokens_del(name: NameArg, file: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Delete a token; its accounts live on until they expire."""
    with opened(load(file, as_json)) as svc:
        kept = svc.store.delete_token(name)
        if as_json:
            print_json({"deleted": name, "accounts_kept": kept})
        else:
            print(f"deleted token {name}; {kept} of its accounts stay until they expire")


@tokens_app.command("qr")
def tokens_qr(name: NameArg, png: PngOpt = None, svg: SvgOpt = None,
              file: ConfigOpt = None) -> None:
    """The token's DCACCOUNT: code, in the terminal or as PNG/SVG files.

    Needs the stored secret (`accounts.token_secrets: stored`); else use
    `tokens rotate NAME --png FILE`."""
    from mailctl.accounts.qr import dcaccount, invite_url, render

    checked_outputs(png, svg)
    with opened(load(file)) as svc:
        tok = svc.store.token(name)
        if tok.secret is None:
            fail(_not_stored(name))
        for path in render(dcaccount(invite_url(svc.settings.web.public_url, tok)), png, svg):
            err(f"wrote {path}")


@tokens_app.command("import-mailadm")
def tokens_import(
    db: Annotated[Path, typer.Argument(help="mailadm's SQLite file (mailadm.db)",
                                       show_default=False)],
    domain: Annotated[str | None, typer.Option(
        help="domain of the imported tokens", show_default="mailadm's mail_domain")] = None,
    file: ConfigOpt = None, as_json: JsonOpt = False,
) -> None:
    """Bring mailadm's tokens (their URLs keep working, use counts kept) and users over."""
    from mailctl.accounts.context import settings_of
    from mailctl.accounts.mailadm_import import import_domain, import_mailadm, read_mailadm

    if not db.is_file():
        usage(f"{db}: no such file (expected mailadm's database, mailadm.db)")
    config = load(file, as_json)
    with store_errors():
        dump = read_mailadm(db)
        dom = import_domain(dump, dict(config.desired.provider_of), domain)
    with opened(config) as svc:
        rep = import_mailadm(dump, svc.store, dict(config.desired.provider_of), dom,
                             keep_secrets=settings_of(config).token_secrets == "stored")
        if as_json:
            print_json(rep.as_dict())
            return
        print(f"imported {len(rep.tokens)} tokens and {rep.accounts} accounts")
        for n, why in rep.skipped_tokens:
            err(f"skipped token {n}: {why}")
        for a, why in rep.skipped_accounts:
            err(f"skipped account {a}: {why}")
        if rep.web_endpoint:
            err(f"mailadm's endpoint was {rep.web_endpoint}: serve mailctl there "
                "(accounts.web.public_url) so printed QR codes keep working")
