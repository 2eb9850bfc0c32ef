"""The web console: the admin dashboard over many domains and mailboxes, and sign-in.

    python bench/console_bench.py [--domains 10] [--mailboxes 1000] [--sessions 20]
                                  [--requests 50] [--logins 5]

The console runs in its own process (uvicorn, one worker, as `mailctl console
serve` runs it) over a dms folder holding DOMAINS x MAILBOXES accounts; the
provider state is read once before measuring (cached, as the console keeps it
for `cache_seconds`). SESSIONS clients, each with its own signed session
cookie, request a page REQUESTS times each, all at once:

- dashboard: GET /admin (every domain: provider, sync state, DNS, probe, tokens)
- static:    GET /signed-out, a page of the same app without data (same
             middleware, same template engine): the baseline of this run

Server time is the app's own time per request (an ASGI wrapper around the
console, request received -> last byte handed to uvicorn); latency is what
the client saw (loopback and queueing included). Bar: dashboard p99 server
time under 100 ms.

CPU time is reported beside wall time (the machine is shared: wall time
under load is mostly waiting for a core): the console process's CPU seconds
per phase (from /proc, user + system) divided by the requests served, and a
sequential phase (one client, nothing else in flight) that gives the app's own
cost per page. The load average is printed at the start, before the browser
flow and at the end.

Then the browser flow, LOGINS times: a real OP (tests/fixtures/oidc_op, node)
and Debian's Chromium; from the click on "Sign in" (through the OP's form,
filled by the robot) to the rendered dashboard. Bar: under 1 s. Each run's
requests are listed with their own time (Chromium's resource timing), and the
CPU seconds the console, the OP and Chromium spent per run, so a slow run says
where its time went. Its peer in the same run: the same clicks through the same
hops served by two stdlib servers that do nothing (Chromium's and the robot's
own floor on this machine at this load).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SESSION_KEY = "bench-session-key-0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """User + system CPU of a process (and, with `tree`, of all its descendants)."""
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir() if tree else [Path(f"/proc/{pid}")]:
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = text[text.rindex(")") + 2:].split()
        # fields[1] is the parent pid; 11/12 user/system time of the process itself
        stats[int(entry.name)] = (int(fields[1]),
                                  (int(fields[11]) + int(fields[12])) / CLK_TCK)
    if not tree:
        return stats.get(pid, (0, 0.0))[1]
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo += [c for c, (parent, _) in stats.items() if parent == p]
    return total


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_fixture(base: Path, domains: int, mailboxes: int, oidc: dict[str, str]) -> Path:
    from mailctl.providers.dms.hashing import FAST_ROUNDS, sha512_crypt

    dms = base / "dms"
    dms.mkdir()
    one_hash = sha512_crypt("bench-password", FAST_ROUNDS)
    lines, yaml = [], ["providers:", "  box: {type: dms, path: ./dms}", "domains:"]
    for d in range(domains):
        name = f"d{d:02d}.bench.test"
        yaml += [f"  {name}:", "    provider: box", "    mailboxes:"]
        for m in range(mailboxes):
            lines.append(f"user{m:04d}@{name}|{one_hash}\n")
            yaml.append(f"      - {{local_part: user{m:04d}}}")
    (dms / "postfix-accounts.cf").write_text("".join(lines))
    yaml += ["console:",
             f"  oidc: {{issuer: \"{oidc['issuer']}\", client_id: \"{oidc['client_id']}\", "
             "client_secret: \"${env:BENCH_CLIENT_SECRET}\", scopes: [openid, email, groups]}",
             "  access: {admin_roles: [mail-admins]}",
             "  session: {secret_key: \"${env:BENCH_SESSION_KEY}\", idle_timeout: 3600}",
             "  cache_seconds: 3600",
             # The bench signs in LOGINS + 1 times in a row from one address: the default
             # limit (10 per minute) would refuse the sixth. Limits are tested in tests/web.
             "  rate_limit: {per_minute: 600, burst: 100}"]
    (base / ".env").write_text(f"BENCH_CLIENT_SECRET={oidc['client_secret']}\n"
                               f"BENCH_SESSION_KEY={SESSION_KEY}\n")
    path = base / "mailctl.yaml"
    path.write_text("\n".join(yaml) + "\n")
    return path


class Timing:
    """Records each request's time inside the app; GET /__bench_times hands them over."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.times: list[tuple[str, float]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/__bench_times":
            body = json.dumps(self.times).encode()
            self.times = []
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        start = time.perf_counter()

        async def timed(message: Any) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.times.append((scope["path"], time.perf_counter() - start))

        await self.app(scope, receive, timed)


def serve(config_path: str, port: int, ready: Any) -> None:
    import uvicorn

    from mailctl.config.load import load_config
    from mailctl.web.serve import build

    config = load_config(Path(config_path))
    app = build(config, public_url=f"http://127.0.0.1:{port}")
    console = app.state.console
    started, cpu = time.perf_counter(), time.process_time()
    console.services.overview(console.services.domain_names(), True)  # the cache, warmed
    ready.put({"wall_s": round(time.perf_counter() - started, 3),
               "cpu_s": round(time.process_time() - cpu, 3)})
    uvicorn.run(Timing(app), host="127.0.0.1", port=port, log_level="warning",
                access_log=False, lifespan="off")


def cookie(n: int) -> str:
    from mailctl.web.auth import SESSION_KEY as WHO
    from mailctl.web.auth import Identity
    from mailctl.web.session import SessionMiddleware

    now = time.time()
    who = Identity(f"admin{n}", "Admin", f"admin{n}@corp.test", ("mail-admins",), True, (),
                   None, "oidc", now, now + 7200)
    mw = SessionMiddleware(None, SESSION_KEY.encode(), idle_timeout=3600, path="/",  # type: ignore[arg-type]
                           secure=False)
    return mw.dump({WHO: who.as_session(), "csrf": f"t{n}"})


async def load(url: str, path: str, sessions: int, requests: int) -> list[float]:
    import httpx

    latencies: list[float] = []

    async def one(n: int) -> None:
        async with httpx.AsyncClient(cookies={"mailctl_console": cookie(n)}) as client:
            for _ in range(requests):
                t = time.perf_counter()
                r = await client.get(url + path)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {r.status_code}")

    await asyncio.gather(*(one(i) for i in range(sessions)))
    return latencies


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(values: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(values) * 1000, 2),
            "p99_ms": round(pct(values, 99) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2), "n": len(values)}


def browser_flow(url: str, op: Any, login: str, password: str, n: int,
                 console_pid: int | None) -> list[dict[str, Any]]:
    """Timed sign-ins; with `console_pid` None (the floor) only wall and Chromium CPU."""
    from playwright.sync_api import Request, sync_playwright
    from tests.fixtures.browser import CHROMIUM

    def cpus() -> tuple[float, float, float]:
        """(console, OP, Chromium + Playwright's driver): the rest of this process's tree."""
        if console_pid is None:
            return 0.0, 0.0, cpu_seconds(os.getpid(), tree=True) - cpu_seconds(os.getpid())
        console, idp = cpu_seconds(console_pid), cpu_seconds(op.proc.pid)
        rest = cpu_seconds(os.getpid(), tree=True) - cpu_seconds(os.getpid()) - console - idp
        return console, idp, rest

    steps: list[Request] = []

    def record(request: Request) -> None:
        steps.append(request)

    out: list[dict[str, Any]] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(n + 1):  # the first one warms discovery and JWKS caches
                context = browser.new_context()
                page = context.new_page()
                page.goto(url + "/")
                steps.clear()
                page.on("requestfinished", record)
                cpu0 = cpus()
                t0 = time.perf_counter()
                page.click("#signin")
                page.wait_for_selector("#op-user")
                page.fill("#op-user", login)
                page.fill("#op-password", password)
                t1 = time.perf_counter()
                page.click("#op-submit")
                try:
                    page.wait_for_selector("#domains", timeout=30000)
                except Exception:
                    print(f"the flow did not reach the dashboard; the page says: "
                          f"{page.inner_text('body')[:500]}", file=sys.stderr)
                    raise
                t2 = time.perf_counter()
                cpu1 = cpus()
                requests = []
                for r in steps:
                    timing = r.timing
                    where = "op" if op and r.url.startswith(op.issuer) else "console"
                    path = r.url.split("?")[0].split("/", 3)[-1]
                    requests.append({"what": f"{r.method} {where} /{path[:40]}",
                                     "ms": round(timing["responseEnd"], 1)})
                out.append({"click_to_dashboard_s": round(t2 - t0, 3),
                            "op_submit_to_dashboard_s": round(t2 - t1, 3),
                            "cpu_s": {"console": round(cpu1[0] - cpu0[0], 3),
                                      "op": round(cpu1[1] - cpu0[1], 3),
                                      "chromium_and_driver": round(cpu1[2] - cpu0[2], 3)},
                            "requests": requests})
                context.close()
        finally:
            browser.close()
    return out[1:]


def floor_servers() -> tuple[str, Any]:
    """Two stdlib HTTP servers replaying the sign-in's hops with no work behind them.

    The same redirects and pages as the real flow (console /login -> OP /auth ->
    form -> POST -> two OP hops -> console /auth/callback -> /admin with its
    stylesheet), each answered at once: what the same clicks cost Chromium and
    the robot on this machine, in this run, when neither app does anything."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    ports: dict[str, int] = {}
    pages = {
        "/": b'<link rel="stylesheet" href="/s.css"><a id="signin" href="/login">Sign in</a>',
        "/form": b'<form method="post" action="/post"><input id="op-user" name="u">'
                 b'<input id="op-password" name="p" type="password">'
                 b'<button id="op-submit">Sign in</button></form>',
        "/admin": b'<link rel="stylesheet" href="/s.css">'
                  b'<table id="domains"><tr><td>d</td></tr></table>',
        "/s.css": b"body { margin: 0 }"}

    def hops(side: str) -> dict[str, str]:
        op, con = f"http://127.0.0.1:{ports['op']}", f"http://127.0.0.1:{ports['console']}"
        return ({"/login": f"{op}/auth", "/cb": "/admin"} if side == "console" else
                {"/auth": "/form", "/post": "/a1", "/a1": "/i2", "/i2": "/a2",
                 "/a2": f"{con}/cb"})

    def handler(side: str) -> type[BaseHTTPRequestHandler]:
        class H(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                to = hops(side).get(path)
                body = b"" if to else pages.get(path, b"")
                self.send_response(303 if to else 200)
                if to:
                    self.send_header("Location", to)
                self.send_header("Content-Type",
                                 "text/css" if path.endswith(".css") else "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.do_GET()
        return H

    servers = {}
    for side in ("console", "op"):
        servers[side] = ThreadingHTTPServer(("127.0.0.1", 0), handler(side))
        ports[side] = servers[side].server_address[1]
        threading.Thread(target=servers[side].serve_forever, daemon=True).start()

    def stop() -> None:
        for srv in servers.values():
            srv.shutdown()
            srv.server_close()

    return f"http://127.0.0.1:{ports['console']}", stop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domains", type=int, default=10)
    ap.add_argument("--mailboxes", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--logins", type=int, default=5)
    ap.add_argument("--only-browser", action="store_true",
                    help="skip the request phases (to look at the sign-in flow alone)")
    args = ap.parse_args()

    from tests.fixtures.mailstack import free_ports
    from tests.fixtures.oidc import start_op, stop_op

    os.environ.setdefault("MAILCTL_NO_CACHE", "1")
    load_at_start = loadavg()
    base = Path(tempfile.mkdtemp(prefix="mailctl-console-bench-"))
    op = start_op()
    proc = None
    try:
        port = free_ports(1)[0]
        url = f"http://127.0.0.1:{port}"
        client_id, client_secret = op.register_client(url)
        op.add_user("benchadmin", "bench-admin-pw", email="admin@corp.test",
                    email_verified=True, groups=["mail-admins"])
        config = write_fixture(base, args.domains, args.mailboxes,
                               {"issuer": op.issuer, "client_id": client_id,
                                "client_secret": client_secret})
        ctx = multiprocessing.get_context("spawn")
        ready = ctx.Queue()
        proc = ctx.Process(target=serve, args=(str(config), port, ready), daemon=True)
        proc.start()
        pid = proc.pid
        assert pid is not None
        warm = ready.get(timeout=300)
        import httpx

        for _ in range(200):
            try:
                httpx.get(url + "/signed-out", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        results: dict[str, Any] = {
            "machine": f"{platform.node()} {os.cpu_count()} cores, Python "
                       f"{platform.python_version()}",
            "load_average": {"start": load_at_start},
            "domains": args.domains, "mailboxes_per_domain": args.mailboxes,
            "sessions": args.sessions, "requests_per_session": args.requests,
            "provider_read_and_summaries": warm}
        asyncio.run(load(url, "/admin", 4, 5))  # warm-up
        httpx.get(url + "/__bench_times")
        phases = [("sequential_static", "/signed-out", 1, 200),
                  ("sequential_dashboard", "/admin", 1, 200),
                  ("static", "/signed-out", args.sessions, args.requests),
                  ("dashboard", "/admin", args.sessions, args.requests),
                  ("static_again", "/signed-out", args.sessions, args.requests)]
        if args.only_browser:
            phases = []
        for label, path, sessions, requests in phases:
            cpu = cpu_seconds(pid)
            wall = time.perf_counter()
            lat = asyncio.run(load(url, path, sessions, requests))
            wall = time.perf_counter() - wall
            cpu = cpu_seconds(pid) - cpu
            server = [t for _, t in httpx.get(url + "/__bench_times").json()]
            results[label] = {"server": summary(server), "latency": summary(lat),
                              "console_cpu_ms_per_request": round(cpu / len(lat) * 1000, 2),
                              "requests_per_s": round(len(lat) / wall, 1)}
        size = len(httpx.get(url + "/admin", cookies={"mailctl_console": cookie(0)}).content)
        results["dashboard_bytes"] = size
        results["load_average"]["before_browser"] = loadavg()
        flows = browser_flow(url, op, "benchadmin", "bench-admin-pw", args.logins, pid)
        floor_url, stop_floor = floor_servers()
        try:
            floor = browser_flow(floor_url, None, "x", "y", args.logins, None)
        finally:
            stop_floor()
        results["load_average"]["end"] = loadavg()
        clicks = [f["click_to_dashboard_s"] for f in flows]
        floor_clicks = [f["click_to_dashboard_s"] for f in floor]
        results["browser_login"] = {
            "runs": flows, "median_s": round(statistics.median(clicks), 3),
            "max_s": round(max(clicks), 3)}
        results["browser_floor"] = {
            "what": "the same hops from two servers that do nothing (Chromium + robot only)",
            "median_s": round(statistics.median(floor_clicks), 3),
            "max_s": round(max(floor_clicks), 3),
            "chromium_cpu_s_median": round(statistics.median(
                f["cpu_s"]["chromium_and_driver"] for f in floor), 3)}
        results["bars"] = {"login_click_to_dashboard_under_1s": max(clicks) < 1.0}
        lines = [f"load average {results['load_average']}"]
        if not args.only_browser:
            p99 = results["dashboard"]["server"]["p99_ms"]
            results["bars"]["dashboard_p99_server_under_100ms"] = p99 < 100
            base_p99 = results["static"]["server"]["p99_ms"]
            seq = (results["sequential_dashboard"]["server"]["median_ms"],
                   results["sequential_static"]["server"]["median_ms"])
            lines.append(f"dashboard p99 server time {p99} ms (static page {base_p99} ms, "
                         f"x{p99 / base_p99:.1f}); alone: {seq[0]} ms (static {seq[1]} ms); "
                         f"CPU {results['dashboard']['console_cpu_ms_per_request']} ms/request "
                         f"(static {results['static']['console_cpu_ms_per_request']})")
        lines.append(f"sign-in click to dashboard median {results['browser_login']['median_s']}"
                     f" s, max {max(clicks)} s (the same hops with no app behind them: median "
                     f"{results['browser_floor']['median_s']} s); first provider read {warm}")
        print(json.dumps(results, indent=2))
        print("\n" + "\n".join(lines), file=sys.stderr)
    finally:
        if proc is not None:
            proc.terminate()
            proc.join(10)
        stop_op(op)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
