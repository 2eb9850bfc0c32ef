"""`mailctl probe run|serve|push|rules`: the end-to-end mail roundtrip probe.

Exit codes: 0 every route passed (and every push was accepted), 1 a route
failed, a push failed or the config is unusable. Output carries route names,
stages, timings and server replies, never a credential or push URL.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from mailctl.cli.common import (
    FAILED,
    OK,
    ConfigOpt,
    JsonOpt,
    err,
    fail,
    json_errors,
    load,
    usage,
)

if TYPE_CHECKING:
    from mailctl.probe.engine import ProbeResult
    from mailctl.probe.resolve import Plan

app = typer.Typer(no_args_is_help=True)

RouteOpt = Annotated[
    list[str] | None,
    typer.Option("--route", "-r", help="only this route (repeatable)", show_default=False),
]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="probe",
                   help="End-to-end mail roundtrip probe: metrics, pushes, alert rules.")


def _plan(file: object, routes: list[str] | None, as_json: bool = False) -> Plan:
    from pathlib import Path

    from mailctl.probe.resolve import ProbeConfigError, plan

    json_errors(as_json)
    config = load(file if isinstance(file, Path) else None, as_json)
    try:
        return plan(config.file.probe, config.base_dir, routes)
    except ProbeConfigError as exc:
        fail(str(exc))


def _run_all(p: Plan) -> list[ProbeResult]:
    from mailctl.probe.engine import run_route

    return [run_route(route, p.settings.sweep_after) for route in p.routes]


def _line(res: ProbeResult) -> str:
    if res.ok:
        return (f"{res.route}: ok  roundtrip {res.roundtrip_seconds or 0:.3f}s "
                f"(send {res.send_seconds or 0:.3f}s, delivery {res.delivery_seconds or 0:.3f}s"
                f"{', IDLE' if res.idle else ''}){_leftovers(res)}")
    code = f" [{res.smtp_code}]" if res.smtp_code else ""
    return f"{res.route}: FAILED at {res.stage}{code}: {res.message}{_leftovers(res)}"


def _leftovers(res: ProbeResult) -> str:
    if not res.leftovers:
        return ""
    return f"; {res.leftovers} leftover probe message(s), {res.swept} swept"


def _report(results: list[ProbeResult], as_json: bool,
            pushes: dict[str, str] | None = None) -> bool:
    ok = all(r.ok for r in results) and not any(v != "ok" for v in (pushes or {}).values())
    if as_json:
        out: dict[str, object] = {"ok": ok, "routes": [r.as_dict() for r in results]}
        if pushes is not None:
            out["pushes"] = pushes
        print(json.dumps(out, indent=2))
    else:
        for res in results:
            print(_line(res))
        for target, status in (pushes or {}).items():
            print(f"push {target}: {status}")
    return ok


@app.command()
def run(file: ConfigOpt = None, route: RouteOpt = None, as_json: JsonOpt = False) -> None:
    """One roundtrip per configured route; the exit code says pass (0) or fail (1)."""
    p = _plan(file, route, as_json)
    ok = _report(_run_all(p), as_json)
    raise typer.Exit(OK if ok else FAILED)


@app.command()
def serve(
    file: ConfigOpt = None,
    listen: Annotated[str | None, typer.Option(
        "--listen", help="address for /metrics [default: probe.listen or :9425]",
        show_default=False)] = None,
    interval: Annotated[float | None, typer.Option(
        "--interval", help="seconds between runs [default: probe.interval]", min=1,
        show_default=False)] = None,
    route: RouteOpt = None,
) -> None:
    """Probe every interval and serve the metrics at /metrics until stopped."""
    from mailctl.probe.serve import serve as serve_forever
    from mailctl.probe.settings import parse_listen

    if listen is not None:  # the command line first: a typo is 64, whatever the config says
        try:
            parse_listen(listen)
        except ValueError:
            usage(f"--listen {listen!r}", "[host]:port like :9425 with a port 1..65535")
    p = _plan(file, route)
    try:
        host, port = parse_listen(listen or p.settings.listen)
    except ValueError as exc:
        fail(str(exc))
    every = interval or p.settings.interval

    def ready(bound: int) -> None:
        err(f"mailctl probe: {len(p.routes)} route(s) every {every:g}s; "
            f"metrics at http://{host or '0.0.0.0'}:{bound}/metrics")

    def each(res: ProbeResult) -> None:
        err(_line(res))

    try:
        serve_forever(p, host, port, every, on_result=each, on_ready=ready)
    except OSError as exc:
        fail(f"cannot serve on {host or '*'}:{port}: {exc.strerror or exc}")


@app.command()
def push(
    file: ConfigOpt = None,
    route: RouteOpt = None,
    pushgateway: Annotated[str | None, typer.Option(
        "--pushgateway", help="Pushgateway URL [default: probe.push.pushgateway]",
        show_default=False)] = None,
    replace: Annotated[bool, typer.Option(
        "--replace", help="PUT (replace each route's group) instead of POST")] = False,
    as_json: JsonOpt = False,
) -> None:
    """One run, then push to the Pushgateway and/or the Uptime Kuma push URL(s)."""
    from mailctl.probe.push import PushError, to_pushgateway, to_uptime_kuma

    p = _plan(file, route, as_json)
    ps = p.settings.push
    gateway = pushgateway or ps.pushgateway
    kuma_targets = [(f"uptime-kuma {r.name}", r.uptime_kuma, [r.name]) for r in p.routes
                    if r.uptime_kuma is not None]
    if p.uptime_kuma is not None:
        kuma_targets.append(("uptime-kuma", p.uptime_kuma, [r.name for r in p.routes]))
    if not gateway and not kuma_targets:
        fail("nothing to push to: set probe.push.pushgateway and/or an uptime_kuma push URL "
             "(or pass --pushgateway)")
    results = _run_all(p)
    by_name = {r.route: r for r in results}
    pushes: dict[str, str] = {}
    if gateway:
        try:
            to_pushgateway(gateway, ps.job, results, ps.timeout, replace)
            pushes["pushgateway"] = "ok"
        except PushError as exc:
            pushes["pushgateway"] = str(exc)
    for target, url, names in kuma_targets:
        try:
            to_uptime_kuma(url, [by_name[n] for n in names], ps.timeout)
            pushes[target] = "ok"
        except PushError as exc:
            pushes[target] = str(exc)
    ok = _report(results, as_json, pushes)
    raise typer.Exit(OK if ok else FAILED)


@app.command()
def rules(
    file: ConfigOpt = None,
    interval: Annotated[float | None, typer.Option(
        "--interval", help="probe interval the rules assume [default: probe.interval of the "
        "config if there is one, else 300]", min=1, show_default=False)] = None,
    slow: Annotated[float, typer.Option("--slow", help="roundtrip seconds that count as slow",
                                        min=1)] = 120,
) -> None:
    """Prometheus alert rules for the probe's metrics, on stdout."""
    from mailctl.config.load import default_path
    from mailctl.probe.rules import render

    job = "mailctl_probe"
    if interval is None:
        path = file or default_path()
        interval = 300.0
        if path.exists():
            probe = load(path).file.probe
            if probe is not None:
                interval, job = probe.interval, probe.push.job
    sys.stdout.write(render(interval, job, slow))
