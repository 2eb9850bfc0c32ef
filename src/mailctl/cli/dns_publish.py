"""`mailctl dns plan` and `mailctl dns apply`: parse, call `mailctl.dns.publish`, print.

The safety limits, the delete confirmation and the checksum are enforced by
the library (`publish.apply_plan`); this module only asks the question a
person at a terminal can answer. octoDNS is imported inside the commands.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mailctl.cli.common import CHANGES, FAILED, PROVIDER, REFUSED, USAGE, ConfigOpt, err, fail

if TYPE_CHECKING:
    from rich.console import Console

    from mailctl.config.load import Config
    from mailctl.dns.propagation import Expect, ServerResult
    from mailctl.dns.publish import DnsPlan

DomainsArg = Annotated[list[str] | None, typer.Argument(
    help="domains to publish [default: every declared domain with a DNS host]",
    show_default=False)]
TtlOpt = Annotated[int | None, typer.Option(
    "--ttl", min=60, max=604800,
    help="TTL in seconds for every record mailctl publishes (MX, SPF, DKIM, ...), e.g. 300 "
    "before a migration; overrides dns.ttl [default: dns.ttl, 3600]", show_default=False)]


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(soft_wrap=False, no_color="NO_COLOR" in os.environ, stderr=stderr,
                   width=None if os.isatty(2 if stderr else 1) else 160)


def _config(path: Path | None) -> Config:
    from mailctl.cli.common import load

    if path is not None and not path.is_file():
        fail(f"--file {path}: no such file (expected an existing mailctl.yaml)", USAGE)
    return load(path, secrets=False)  # the DNS host's own credentials are resolved later


def _publish_failure(exc: Exception) -> NoReturn:
    from mailctl.secret import scrub

    fail(scrub(str(exc)), int(getattr(exc, "exit_code", FAILED)))


def _make_plan(config: Config, domains: list[str] | None, ttl: int | None) -> DnsPlan:
    from mailctl.dns.publish import PublishError, make_plan

    try:
        return make_plan(config, domains or (), ttl=ttl)
    except PublishError as exc:
        _publish_failure(exc)


def plan_cmd(
    domains: DomainsArg = None,
    file: ConfigOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="versioned JSON on stdout")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Markdown, e.g. for a pull "
                                           "request comment")] = False,
    detailed_exitcode: Annotated[bool, typer.Option(
        "--detailed-exitcode", help="exit 2 when there are changes, 0 when there are none")
    ] = False,
    ttl: TtlOpt = None,
) -> None:
    """What publishing would change at each domain's DNS host (reads only).

    Only mail records are compared; everything else in the zone is left alone,
    and values of shared TXT sets that are not mail records are kept.
    """
    from mailctl.dns.planrender import plan_json, plan_markdown, plan_table

    if as_json and markdown:
        fail("--json and --markdown exclude each other (expected one output format)", USAGE)
    plan = _make_plan(_config(file), domains, ttl)
    if as_json:
        typer.echo(plan_json(plan))
    elif markdown:
        typer.echo(plan_markdown(plan), nl=False)
    else:
        plan_table(plan, _console())
    if detailed_exitcode and plan.has_changes:
        raise typer.Exit(CHANGES)


def apply_cmd(
    domains: DomainsArg = None,
    file: ConfigOpt = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="confirm the deletions the plan "
                                      "shows without asking")] = False,
    force: Annotated[bool, typer.Option("--force", help="apply even past the safety limits "
                                        "(share of records updated or deleted)")] = False,
    ttl: TtlOpt = None,
    checksum: Annotated[str | None, typer.Option(
        "--checksum", help="apply only if the plan is exactly the one with this checksum "
        "(from dns plan)", show_default=False)] = None,
    wait: Annotated[float, typer.Option(
        "--wait", min=0, max=3600, help="seconds to poll the servers for the new data; "
        "0 skips polling")] = 60.0,
    resolver: Annotated[str | None, typer.Option(
        "--resolver", help="resolver IP[:PORT] to poll and to find the zone's nameservers "
        "[default: the system's]", show_default=False)] = None,
    ns_port: Annotated[int, typer.Option("--ns-port", min=1, max=65535, hidden=True,
                                help="authoritative servers port (tests: local Knot)")] = 53,
    as_json: Annotated[bool, typer.Option("--json", help="the outcome as JSON on stdout")
                       ] = False,
) -> None:
    """Publish the planned changes: shows the plan, asks before deletes, polls propagation.

    Exit 0 applied, 1 config problem, 3 a DNS host failed or did not apply, 4 refused
    (safety limit, unconfirmed delete, plan changed since --checksum).
    """
    import json

    from mailctl.dns.planrender import plan_table
    from mailctl.dns.publish import Refused, apply_plan, check_plan

    server = None
    if resolver:
        from mailctl.dns.resolver import parse_server

        try:
            server = parse_server(resolver)
        except ValueError as exc:
            fail(f"--resolver: {exc} (expected IP or IP:PORT)", USAGE)
    if checksum is not None and (len(checksum) != 64 or any(
            ch not in "0123456789abcdefABCDEF" for ch in checksum)):
        fail(f"--checksum {checksum!r} is not a plan checksum (expected 64 hex digits)", USAGE)
    plan = _make_plan(_config(file), domains, ttl)
    plan_table(plan, _console(stderr=as_json))
    if not plan.has_changes:
        if as_json:
            typer.echo(json.dumps({"version": 1, "applied": [], "propagation": []}))
        return
    try:
        check_plan(plan, force=force, confirm_deletes=True, checksum=checksum)
    except Refused as exc:
        fail(str(exc), REFUSED)
    deletes = [c for z in plan.zones for c in z.deletes]
    confirmed = yes or not deletes
    if not confirmed:
        if not sys.stdin.isatty():
            fail(f"{len(deletes)} deletion(s) need confirmation: review the plan, then pass "
                 "--yes", REFUSED)
        confirmed = typer.confirm(f"Delete the {len(deletes)} record set(s)/value(s) marked "
                                  "- above?", default=False, err=True)
        if not confirmed:
            fail("deletions not confirmed; nothing was changed", REFUSED)
    try:
        outcomes = apply_plan(plan, force=force, confirm_deletes=confirmed, checksum=checksum)
    except Refused as exc:
        fail(str(exc), REFUSED)
    failed = [o for o in outcomes if not o.applied]
    for o in outcomes:
        err(f"{o.zone}: {o.changes} change(s) applied at {o.host}" if o.applied
            else f"error: {o.error}")
    propagation = []
    if wait > 0 and len(failed) < len(outcomes):
        propagation = _propagation(plan, server, ns_port, wait, {o.zone for o in failed})
    if as_json:
        typer.echo(json.dumps({"version": 1, "checksum": plan.checksum,
                               "applied": [o.as_dict() for o in outcomes],
                               "propagation": [r.as_dict() for r in propagation]}, indent=2))
    if failed:
        raise typer.Exit(PROVIDER)


def _propagation(plan: DnsPlan, server: tuple[str, int] | None, ns_port: int, wait: float,
                 failed: set[str]) -> list[ServerResult]:
    import asyncio

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mailctl.dns.propagation import Server, authoritative_servers, expectations, poll
    from mailctl.dns.resolver import system_resolvers

    resolvers = [server] if server else system_resolvers()
    results: list[ServerResult] = []
    for zone, expects in expectations(plan).items():
        if zone in failed:
            continue

        async def run(zone: str = zone, expects: list[Expect] = expects) -> list[ServerResult]:
            servers = await authoritative_servers(zone, server, ns_port)
            servers += [Server("resolver", a, p, False) for a, p in resolvers]
            with Progress(TextColumn("{task.description}"), BarColumn(),
                          TextColumn("{task.completed}/{task.total} servers"),
                          TimeElapsedColumn(), console=_console(stderr=True),
                          transient=True) as bar:
                task = bar.add_task(f"{zone}: waiting for the new data", total=len(servers))

                def show(rs: list[ServerResult]) -> None:
                    bar.update(task, completed=sum(r.ok for r in rs))

                return await poll(expects, servers, timeout=wait, progress=show)

        for r in asyncio.run(run()):
            results.append(r)
            state = "answers with the new data" if r.ok else (
                f"not yet: {r.error or ', '.join(r.pending[:3])}")
            kind = "authoritative" if r.server.authoritative else "resolver"
            err(f"  {zone}: {r.server.where} [{kind}] {state}")
    return results


def register(app: typer.Typer) -> None:
    app.command("plan")(plan_cmd)
    app.command("apply")(apply_cmd)
