"""Running the web API: bind first, then announce, then serve.

The listening socket is made here, before anything is printed, so "serving on"
is only said once connections are accepted (they wait in the backlog while the
workers start), and a port that is taken or not ours is a clean error instead
of uvicorn's log line and exit. uvicorn gets the socket by its file descriptor
(its documented `fd` option), for one worker and for many.
"""

from __future__ import annotations

import errno
import os
import socket
from dataclasses import dataclass

BACKLOG = 2048


class BindError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class Listener:
    sock: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def bind(host: str, port: int) -> Listener:
    """A listening TCP socket on host:port, or BindError saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise BindError(f"cannot listen on {host}:{port}: unknown host ({exc})") from None
    except OverflowError:
        raise BindError(f"cannot listen on port {port} (expected 1-65535)") from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it (Linux): small JSON answers go out at once
        # instead of waiting for the client's delayed ACK.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        why = {errno.EADDRINUSE: "the address is already in use",
               errno.EACCES: "permission denied (ports below 1024 need privileges)",
               errno.EADDRNOTAVAIL: "no such address on this machine"}.get(
                   exc.errno or 0, exc.strerror or str(exc))
        raise BindError(f"cannot listen on {host}:{port}: {why}") from None
    sock.set_inheritable(True)
    bound = sock.getsockname()
    return Listener(sock, str(bound[0]), int(bound[1]))


def run(listener: Listener, config_path: str, workers: int, prune_interval: float) -> None:
    """Serve until stopped; each worker builds the app with web.app_from_env (and the
    console beside it when the config has a `console:` section: mailctl.web.serve)."""
    import uvicorn

    os.environ["MAILCTL_CONFIG"] = config_path
    os.environ["MAILCTL_PRUNE_INTERVAL"] = repr(float(prune_interval))
    uvicorn.run("mailctl.web.serve:combined_from_env", factory=True,  # + the console
                fd=listener.sock.fileno(), workers=workers, backlog=BACKLOG,
                # h11 named, not picked: its limits are the documented ones
                # (docs/accounts.md); no websockets: an upgrade request is plain HTTP.
                http="h11", ws="none", lifespan="on",
                access_log=False, log_level="warning", server_header=False,
                # uvicorn would believe X-Forwarded-For from 127.0.0.1 by itself; the
                # client address is ours to decide (accounts.web.trusted_proxies)
                proxy_headers=False, forwarded_allow_ips=[])
