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

Then the browser flow, LOGINS times: a real OP (tests/fixtures/oidc_op, node)
and Debian's Chromium; from the click on "Sign in" (through the OP's form,
filled by the robot) to the rendered dashboard. Bar: under 1 s.
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
             "  cache_seconds: 3600"]
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
    started = time.perf_counter()
    console.services.overview(console.services.domain_names(), True)  # the cache, warmed
    ready.put(time.perf_counter() - started)
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


def browser_flow(url: str, op: Any, login: str, password: str, n: int) -> list[dict[str, float]]:
    from playwright.sync_api import sync_playwright
    from tests.fixtures.browser import CHROMIUM

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            for _ in range(n + 1):  # the first one warms discovery and JWKS caches
                context = browser.new_context()
                page = context.new_page()
                page.goto(url + "/")
                t0 = time.perf_counter()
                page.click("#signin")
                page.wait_for_selector("#op-user")
                page.fill("#op-user", login)
                page.fill("#op-password", password)
                t1 = time.perf_counter()
                page.click("#op-submit")
                page.wait_for_selector("#domains")
                t2 = time.perf_counter()
                out.append({"click_to_dashboard_s": round(t2 - t0, 3),
                            "op_submit_to_dashboard_s": round(t2 - t1, 3)})
                context.close()
        finally:
            browser.close()
    return out[1:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domains", type=int, default=10)
    ap.add_argument("--mailboxes", type=int, default=1000)
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--logins", type=int, default=5)
    args = ap.parse_args()

    from tests.fixtures.mailstack import free_ports
    from tests.fixtures.oidc import start_op, stop_op

    os.environ.setdefault("MAILCTL_NO_CACHE", "1")
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
            "domains": args.domains, "mailboxes_per_domain": args.mailboxes,
            "sessions": args.sessions, "requests_per_session": args.requests,
            "provider_read_and_summaries_s": round(warm, 3)}
        asyncio.run(load(url, "/admin", 4, 5))  # warm-up
        httpx.get(url + "/__bench_times")
        for label, path in (("static", "/signed-out"), ("dashboard", "/admin"),
                            ("static_again", "/signed-out")):
            lat = asyncio.run(load(url, path, args.sessions, args.requests))
            server = [t for _, t in httpx.get(url + "/__bench_times").json()]
            results[label] = {"server": summary(server), "latency": summary(lat)}
        size = len(httpx.get(url + "/admin", cookies={"mailctl_console": cookie(0)}).content)
        results["dashboard_bytes"] = size
        flows = browser_flow(url, op, "benchadmin", "bench-admin-pw", args.logins)
        clicks = [f["click_to_dashboard_s"] for f in flows]
        results["browser_login"] = {
            "runs": flows, "median_s": round(statistics.median(clicks), 3),
            "max_s": round(max(clicks), 3)}
        p99 = results["dashboard"]["server"]["p99_ms"]
        results["bars"] = {"dashboard_p99_server_under_100ms": p99 < 100,
                           "login_click_to_dashboard_under_1s": max(clicks) < 1.0}
        print(json.dumps(results, indent=2))
        base_p99 = results["static"]["server"]["p99_ms"]
        print(f"\ndashboard p99 server time {p99} ms (static page {base_p99} ms, "
              f"x{p99 / base_p99:.1f}); sign-in click to dashboard "
              f"median {results['browser_login']['median_s']} s, max {max(clicks)} s",
              file=sys.stderr)
    finally:
        if proc is not None:
            proc.terminate()
            proc.join(10)
        stop_op(op)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
