"""Results out of a one-shot run: Pushgateway groups and Uptime Kuma push monitors.

Pushgateway: one group per route ({job, route}), sent with POST by default.
POST replaces only the metrics it carries, and a failed run does not carry
`last_success_timestamp_seconds`, so the gateway keeps the time of the last
success and the staleness alert still fires while every run fails (with PUT
the whole group is replaced and that series would vanish).

Uptime Kuma: the push URL's token is its only credential, so the URL is a
Secret and never appears in an error message.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence

from mailctl.probe.engine import ProbeResult
from mailctl.probe.metrics import ProbeMetrics
from mailctl.secret import Secret, scrub


class PushError(RuntimeError):
    pass


def to_pushgateway(url: str, job: str, results: Sequence[ProbeResult], timeout: float,
                   replace: bool = False) -> None:
    from prometheus_client import push_to_gateway, pushadd_to_gateway

    send = push_to_gateway if replace else pushadd_to_gateway
    for res in results:
        m = ProbeMetrics()
        m.record(res)
        if not res.ok:
            m.registry.unregister(m.last_success)  # keep the gateway's last success
        try:
            send(url, job=job, grouping_key={"route": res.route}, registry=m.registry,
                 timeout=timeout)
        except (OSError, ValueError) as exc:
            raise PushError(f"Pushgateway {url}: {scrub(str(exc))}") from None


def kuma_params(results: Sequence[ProbeResult]) -> dict[str, str]:
    """status/msg/ping for one monitor covering `results` (up only if all passed)."""
    ok = all(r.ok for r in results)
    if ok:
        rts = [r.roundtrip_seconds or 0.0 for r in results]
        ping = round(max(rts) * 1000)
        names = ", ".join(r.route for r in results)
        return {"status": "up", "msg": f"OK {names} in {ping} ms", "ping": str(ping)}
    msg = "; ".join(f"{r.route}: {r.message}" for r in results if not r.ok)
    return {"status": "down", "msg": scrub(msg)[:250], "ping": ""}


def to_uptime_kuma(push_url: Secret, results: Sequence[ProbeResult], timeout: float) -> None:
    """GET the push URL with status/msg/ping replacing whatever the copied URL had."""
    parts = urllib.parse.urlsplit(push_url.reveal())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise PushError(f"Uptime Kuma push URL ({push_url.source}) is not an http(s) URL")
    query = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
             if k not in ("status", "msg", "ping")]
    query += list(kuma_params(results).items())
    url = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))
    where = f"Uptime Kuma at {parts.hostname} ({push_url.source})"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            body = resp.read(4096)
    except urllib.error.HTTPError as exc:
        raise PushError(f"{where}: HTTP {exc.code} {_kuma_msg(exc.read(4096))}") from None
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PushError(f"{where}: {scrub(str(reason))}") from None
    try:
        reply = json.loads(body or b"{}")
    except ValueError:
        return  # not Kuma's JSON, but the request was accepted
    if isinstance(reply, dict) and reply.get("ok") is False:
        raise PushError(f"{where}: {_kuma_msg(body)}")


def _kuma_msg(body: bytes) -> str:
    try:
        reply = json.loads(body)
        if isinstance(reply, dict):
            return scrub(str(reply.get("msg", "")))[:200]
    except ValueError:
        pass
    return ""
