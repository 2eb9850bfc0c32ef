"""`mailctl dns …` and `mailctl dkim …`: parsing and printing only.

dnspython, rich and cryptography are imported inside the commands so that
building the command tree (and `mailctl --version`) stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mailctl.cli import dns_publish
from mailctl.cli.common import USAGE, check_output_file, err, fail

if TYPE_CHECKING:
    from rich.console import Console

    from mailctl.dns.records import DomainDnsSpec

app = typer.Typer(no_args_is_help=True, help="The records a mail domain needs, checked live.")
dkim_app = typer.Typer(no_args_is_help=True, help="DKIM keys for self-hosted domains.")
dns_publish.register(app)  # dns plan, dns apply



@dkim_app.callback()
def _dkim_group() -> None:
    """Keep `dkim` a command group even while it has a single sub-command."""


ProfileOpt = Annotated[str | None, typer.Option(
    "--profile", help="provider profile (dms, migadu, mailcow, mailu, stalwart, …)")]
RelayOpt = Annotated[list[str] | None, typer.Option(
    "--relay", help="relay profile, repeatable (brevo, mailgun, ses, …)")]
SelectorOpt = Annotated[list[str] | None, typer.Option(
    "--selector", help="DKIM selector, repeatable (overrides the profile's)")]
MxOpt = Annotated[list[str] | None, typer.Option(
    "--mx-host", help="self-hosted: MX host name, repeatable [default: mail.DOMAIN]")]
ParamOpt = Annotated[list[str] | None, typer.Option(
    "--param", help="profile parameter KEY=VALUE, repeatable (e.g. verify=CODE); a relay's "
    "own as RELAY.KEY=VALUE (e.g. brevo.verify=CODE)")]
MtaStsOpt = Annotated[str | None, typer.Option(
    "--mta-sts", help="MTA-STS mode the domain should publish (enforce|testing|none)")]
ProfileDirOpt = Annotated[list[Path] | None, typer.Option(
    "--profile-dir", help="extra directory with providers/ and relays/ profile files")]
FileOpt = Annotated[Path | None, typer.Option(
    "--file", "-f", help="take the domain's settings from this mailctl.yaml", show_default=False)]


def spec_from_options(domain: str, profile: str | None = None, relays: list[str] | None = None,
                      selectors: list[str] | None = None, **extra: Any) -> DomainDnsSpec:
    """A spec from command-line options alone (no config file)."""
    from mailctl.dns.records import DomainDnsSpec
    from mailctl.model import AddressError, normalise_domain

    try:
        name = normalise_domain(domain)
    except AddressError as exc:
        fail(f"{exc} (expected a domain such as example.org)", USAGE)
    params: dict[str, str] = {}
    relay_params: dict[str, dict[str, str]] = {}
    for item in extra.pop("params", None) or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--param {item!r} is malformed (expected KEY=VALUE or RELAY.KEY=VALUE)", USAGE)
        relay, dot, relay_key = key.partition(".")
        if dot:
            relay_params.setdefault(relay, {})[relay_key] = value
        else:
            params[key] = value
    mode = extra.pop("mta_sts", None)
    if mode is not None and mode not in ("enforce", "testing", "none"):
        fail(f"--mta-sts {mode!r} is not a mode (expected enforce, testing or none)", USAGE)
    return DomainDnsSpec(
        domain=name,
        profile=profile or "dms",
        relays=tuple(relays or ()),
        dkim_selectors=tuple(selectors or ()),
        params=params,
        relay_params=relay_params,
        mx_hosts=tuple(h.lower().rstrip(".") for h in extra.pop("mx_hosts", None) or ()),
        mta_sts_mode=mode,
        profile_dirs=tuple(extra.pop("profile_dirs", None) or ()),
    )


def resolve_spec(domain: str, config_path: Path | None, **opts: Any) -> DomainDnsSpec:
    """The spec for `domain`: from the config file when one is given, else from options."""
    if config_path is None:
        from mailctl.config.load import default_path

        implicit = default_path()
        given = any(v for k, v in opts.items() if k not in ("profile_dirs",))
        if given or not implicit.exists():
            return spec_from_options(domain, **opts)
        config_path = implicit
    return spec_from_config(domain, config_path)


def spec_from_config(domain: str, config_path: Path) -> DomainDnsSpec:
    """The domain's provider type and `dns:` block from mailctl.yaml (exit 1 if undeclared)."""
    from mailctl.cli.common import load
    from mailctl.dns.settings import DnsConfigError
    from mailctl.dns.settings import spec_from_config as from_config

    try:
        return from_config(load(config_path, secrets=False), domain)
    except DnsConfigError as exc:
        fail(str(exc))


def _console() -> Console:
    from rich.console import Console

    return Console(soft_wrap=False, no_color="NO_COLOR" in os.environ,
                   width=None if os.isatty(1) else 200)


def _expected(spec: DomainDnsSpec) -> list[Any]:
    from mailctl.dns.profiles import ProfileError
    from mailctl.dns.records import expected_records

    try:
        return expected_records(spec)
    except ProfileError as exc:
        fail(str(exc))


@app.command("records")
def records_cmd(
    domain: Annotated[str, typer.Argument(help="the mail domain, e.g. example.org")],
    fmt: Annotated[str, typer.Option("--format", help="table, json, zone or octodns")] = "table",
    profile: ProfileOpt = None, relay: RelayOpt = None, selector: SelectorOpt = None,
    mx_host: MxOpt = None, param: ParamOpt = None, mta_sts: MtaStsOpt = None,
    profile_dir: ProfileDirOpt = None, file: FileOpt = None,
) -> None:
    """What to publish for DOMAIN, from its provider and relay profiles."""
    from mailctl.dns.records import lint_records
    from mailctl.dns.render import FORMATS, render_records

    if fmt not in FORMATS:
        fail(f"--format {fmt!r} is not a format (expected one of {', '.join(FORMATS)})", USAGE)
    spec = resolve_spec(domain, file, profile=profile, relays=relay, selectors=selector,
                        mx_hosts=mx_host, params=param, mta_sts=mta_sts, profile_dirs=profile_dir)
    records = _expected(spec)
    problems = lint_records(records)
    if problems:
        fail("the profile produces an invalid record set: " + "; ".join(problems))
    render_records(records, spec.domain, fmt, _console())


@app.command("check")
def check_cmd(
    domains: Annotated[list[str], typer.Argument(help="one or more domains")],
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    resolver: Annotated[str | None, typer.Option(
        "--resolver", help="resolver IP[:PORT] [default: the system's]")] = None,
    timeout: Annotated[float, typer.Option(min=0.05, max=60, help="seconds per DNS query")
                       ] = 2.0,
    ca_file: Annotated[Path | None, typer.Option(
        "--ca-file", help="CA bundle for MTA-STS policy fetches")] = None,
    https_port: Annotated[int, typer.Option("--https-port", min=1, max=65535, hidden=True,
                                   help="MTA-STS policy port (tests: a local HTTPS server)")] = 443,
    ns_check: Annotated[bool, typer.Option(
        "--ns-check/--no-ns-check",
        help="also ask each authoritative nameserver directly and compare their answers "
        "(stale secondary, lame or dead server)",
    )] = False,
    ns_port: Annotated[int, typer.Option("--ns-port", min=1, max=65535, hidden=True,
                                help="authoritative servers port (tests: local Knot)")] = 53,
    fail_on: Annotated[str, typer.Option(
        "--fail-on", help="lowest severity that makes the exit code 1: error or warning",
    )] = "warning",
    profile: ProfileOpt = None, relay: RelayOpt = None, selector: SelectorOpt = None,
    mx_host: MxOpt = None, param: ParamOpt = None, mta_sts: MtaStsOpt = None,
    profile_dir: ProfileDirOpt = None, file: FileOpt = None,
) -> None:
    """What is published vs what is expected, plus lint.

    Exit 0 ok, 1 problems (errors, and warnings unless --fail-on error), 3 could not tell.
    """
    import ssl

    from mailctl.dns.check import check_domains_sync
    from mailctl.dns.context import HttpsOptions
    from mailctl.dns.findings import Severity, overall_exit_code
    from mailctl.dns.render import reports_json, reports_table
    from mailctl.dns.resolver import parse_server

    if fail_on not in ("error", "warning"):
        fail(f"--fail-on {fail_on!r} is not a level (expected error or warning)", USAGE)
    threshold = Severity(fail_on)
    if resolver:
        try:
            parse_server(resolver)
        except ValueError as exc:
            fail(f"--resolver: {exc} (expected IP or IP:PORT)", USAGE)
    specs = [resolve_spec(d, file, profile=profile, relays=relay, selectors=selector,
                          mx_hosts=mx_host, params=param, mta_sts=mta_sts,
                          profile_dirs=profile_dir) for d in domains]
    for spec in specs:
        _expected(spec)  # unknown profiles are a user mistake: one line, exit 1
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError) as exc:
        fail(f"--ca-file {ca_file}: {exc} (expected a readable PEM CA bundle)", USAGE)
    reports = check_domains_sync(specs, resolver, timeout=timeout,
                                 https=HttpsOptions(ssl_context=context, port=https_port),
                                 ns_check=ns_check, ns_port=ns_port)
    if as_json:
        typer.echo(reports_json(reports, threshold))
    else:
        reports_table(reports, _console(), threshold)
    raise typer.Exit(overall_exit_code(reports, threshold))


@app.command("mta-sts")
def mta_sts_cmd(
    domain: Annotated[str, typer.Argument(help="the mail domain the policy is for")],
    mode: Annotated[str, typer.Option(help="enforce, testing or none")] = "testing",
    max_age: Annotated[int, typer.Option(help="seconds senders cache the policy")] = 604800,
    mx: Annotated[list[str] | None, typer.Option(
        "--mx", help="MX pattern, repeatable [default: the profile's MX hosts]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    profile: ProfileOpt = None, mx_host: MxOpt = None, profile_dir: ProfileDirOpt = None,
    file: FileOpt = None,
) -> None:
    """The MTA-STS policy file and the TXT record whose id changes with it."""
    import json

    from mailctl.dns.records import expected_mx, load_profiles
    from mailctl.dns.stspolicy import MAX_AGE_LIMIT, policy_id, render_policy, tls_rpt_value

    if mode not in ("enforce", "testing", "none"):
        fail(f"--mode {mode!r} is not a mode (expected enforce, testing or none)", USAGE)
    if not 0 <= max_age <= MAX_AGE_LIMIT:
        fail(f"--max-age {max_age} is out of range (expected 0..{MAX_AGE_LIMIT})", USAGE)
    spec = resolve_spec(domain, file, profile=profile, mx_hosts=mx_host, profile_dirs=profile_dir)
    _expected(spec)
    patterns = [m.lower().rstrip(".") for m in mx or []]
    if not patterns:
        provider, _ = load_profiles(spec)
        patterns = [h for _, h in expected_mx(spec, provider)]
    policy = render_policy(mode, patterns, max_age)
    txt = f"v=STSv1; id={policy_id(policy)}"
    url = f"https://mta-sts.{spec.domain}/.well-known/mta-sts.txt"
    if as_json:
        typer.echo(json.dumps({"url": url, "policy": policy, "txt_name": f"_mta-sts.{spec.domain}",
                               "txt": txt, "tls_rpt": tls_rpt_value(spec)}, indent=2))
        return
    typer.echo(f"# serve as text/plain at {url} (HTTPS, valid certificate, no redirect)")
    typer.echo(policy.replace("\r\n", "\n"), nl=False)
    typer.echo(f'\n_mta-sts.{spec.domain}. 3600 IN TXT "{txt}"')
    typer.echo(f'_smtp._tls.{spec.domain}. 3600 IN TXT "{tls_rpt_value(spec)}"')
    typer.echo("# the id is a hash of the policy: republish the TXT whenever the policy changes")


@dkim_app.command("generate")
def dkim_generate_cmd(
    domain: Annotated[str, typer.Argument(help="the mail domain the key signs for")],
    selector: Annotated[str, typer.Option(help="DKIM selector, e.g. mail")],
    bits: Annotated[int, typer.Option(help="RSA key size")] = 2048,
    algorithm: Annotated[str, typer.Option(help="rsa or ed25519")] = "rsa",
    key_file: Annotated[Path | None, typer.Option(
        "--key-file", help="private key file [default: ./DOMAIN.SELECTOR.key]")] = None,
    force: Annotated[bool, typer.Option(help="overwrite an existing key file")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
) -> None:
    """A new key pair: the private key to a file (mode 600), the TXT record to stdout."""
    import json
    import re

    from mailctl.dns.dkim import generate_key
    from mailctl.model import AddressError, normalise_domain

    try:
        name = normalise_domain(domain)
    except AddressError as exc:
        fail(f"{exc} (expected a domain such as example.org)", USAGE)
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*", selector):
        fail(f"--selector {selector!r} is not a valid DNS label (expected e.g. mail)", USAGE)
    if algorithm not in ("rsa", "ed25519"):
        fail(f"--algorithm {algorithm!r} is unknown (expected rsa or ed25519)", USAGE)
    if algorithm == "rsa" and not 1024 <= bits <= 4096:
        fail(f"--bits {bits} is out of range (expected 1024..4096, 2048 recommended, "
             "RFC 8301)", USAGE)
    path = key_file or Path(f"{name}.{selector}.key")
    check_output_file(path, "--key-file")
    if path.exists() and not force:
        fail(f"{path} exists; use --force to replace it (the old key stops working)")
    key = generate_key(name, selector, bits=bits, algorithm=algorithm)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key.private_pem)
    except OSError as exc:
        fail(f"cannot write {path}: {exc.strerror}")
    if as_json:
        typer.echo(json.dumps({"name": key.name, "type": "TXT", "value": key.txt_value,
                               "zone": key.zone_line(), "bits": key.bits,
                               "key_file": str(path)}, indent=2))
        return
    err(f"private key written to {path}")
    typer.echo(key.zone_line())
    typer.echo(f"# web UI value (one line): {key.txt_value}")
