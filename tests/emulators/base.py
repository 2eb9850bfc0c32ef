"""A small threaded HTTP server that provider emulators build on.

Each emulator is a plain object holding the provider's state and answering
parsed requests; this base runs it on a free loopback port, adds per-request
latency (concurrent requests overlap, as on a real server), logs every call,
and applies faults a test switches on: an HTTP status, a connection dropped
before or after the request was processed, a response slower than the
client's timeout.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit


@dataclass
class Request:
    method: str
    path: str  # below the emulator's prefix, URL-decoded, without a leading slash
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # JSON-encoded unless bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Fault:
    """`status`: answer `status`/`body` instead; `drop`: close without answering, before
    processing; `drop_after`: process, then close (the answer is lost); `slow`: wait
    `delay` seconds first (longer than the client timeout = a timeout)."""

    action: str
    status: int = 500
    body: Any = None
    method: str | None = None
    path: str | None = None  # substring of the path
    skip: int = 0  # let this many matching requests through first
    times: int = 1  # how many to hit; -1 = every one from then on
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    when: Callable[[Request], bool] | None = None  # any other condition on the request

    def matches(self, req: Request) -> bool:
        return ((self.method is None or self.method == req.method)
                and (self.path is None or self.path in req.path)
                and (self.when is None or self.when(req)))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True


class Emulator:
    prefix = ""  # e.g. "api/v1"

    def __init__(self, latency: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.latency = latency
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, int]] = []  # method, path, status
        self.times: list[float] = []  # time.monotonic() of each log entry
        # Called under the lock just before a request is processed: lets a test make
        # something happen "concurrently" (another admin creating the same object).
        self.before: Callable[[Request], object] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> str:
        emu = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                emu._serve(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._server = _Server(("127.0.0.1", 0), Handler)
        port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{port}" + (f"/{self.prefix}" if self.prefix else "")
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- test controls ------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()

    def calls(self, method: str | None = None, contains: str | None = None) -> int:
        with self.lock:
            return sum(1 for m, p, _ in self.log
                       if (method is None or m == method) and (contains is None or contains in p))

    def reset_log(self) -> None:
        with self.lock:
            self.log.clear()
            self.times.clear()

    # -- to implement ---------------------------------------------------------------

    def arrive(self, req: Request) -> Reply | None:
        """Called on arrival, before latency (auth, rate limits); a reply ends the request."""
        return None

    def handle(self, req: Request) -> Reply:
        raise NotImplementedError

    def encode(self, body: Any, method: str) -> bytes:
        """A JSON body as the real server writes it (mailcow: PHP's json_encode)."""
        return json.dumps(body).encode()

    # -- serving --------------------------------------------------------------------

    def _fault_for(self, req: Request) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.times == 0 or not f.matches(req):
                    continue
                if f.skip > 0:
                    f.skip -= 1
                    continue
                if f.times > 0:
                    f.times -= 1
                return f
        return None

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path).lstrip("/")
        if self.prefix:
            if not path.startswith(self.prefix):
                self._send(h, Reply(404, {"error": "not found"}), h.command, path)
                return
            path = path[len(self.prefix):].lstrip("/")
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        req = Request(h.command, path, parse_qs(parts.query),
                      {k.lower(): v for k, v in h.headers.items()}, body)
        with self.lock:
            early = self.arrive(req)
        if early is not None:
            self._send(h, early, req.method, path)
            return
        fault = self._fault_for(req)
        if self.latency:
            time.sleep(self.latency)
        if fault is not None and fault.action == "slow":
            time.sleep(fault.delay)
        if fault is not None and fault.action == "drop":
            self._drop(h, req, "drop")
            return
        if fault is not None and fault.action == "status":
            reply = Reply(fault.status, fault.body, dict(fault.headers))
        else:
            with self.lock:
                if self.before is not None:
                    self.before(req)
                reply = self.handle(req)
        if fault is not None and fault.action == "drop_after":
            self._drop(h, req, "drop_after")
            return
        self._send(h, reply, req.method, path)

    def _drop(self, h: BaseHTTPRequestHandler, req: Request, what: str) -> None:
        with self.lock:
            self.log.append((req.method, req.path, 0))
            self.times.append(time.monotonic())
        h.close_connection = True
        with contextlib.suppress(OSError):
            h.connection.shutdown(socket.SHUT_RDWR)

    def _send(self, h: BaseHTTPRequestHandler, reply: Reply, method: str, path: str) -> None:
        with self.lock:
            self.log.append((method, path, reply.status))
            self.times.append(time.monotonic())
        if isinstance(reply.body, bytes):
            data = reply.body
        else:
            data = self.encode(reply.body, method) if reply.body is not None else b""
        try:
            h.send_response(reply.status)
            h.send_header("Content-Type", reply.headers.pop("Content-Type", "application/json"))
            for k, v in reply.headers.items():
                h.send_header(k, v)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            h.wfile.write(data)
        except OSError:
            h.close_connection = True
