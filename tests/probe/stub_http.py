"""A local HTTP server that records requests (Pushgateway / Uptime Kuma stand-in)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Seen:
    method: str
    path: str
    content_type: str | None
    body: bytes


@dataclass
class Stub:
    url: str
    seen: list[Seen] = field(default_factory=list)
    kuma_reply: tuple[int, bytes] = (200, b'{"ok":true}')


@pytest.fixture
def http_stub() -> Iterator[Stub]:
    stub = Stub("")

    class Handler(BaseHTTPRequestHandler):
        def _record(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            stub.seen.append(Seen(self.command, self.path, self.headers.get("Content-Type"),
                                  self.rfile.read(n) if n else b""))
            code, out = stub.kuma_reply if self.path.startswith("/api/push/") else (200, b"")
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        do_GET = do_PUT = do_POST = do_DELETE = _record

        def log_message(self, format: str, *args: object) -> None:
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    stub.url = f"http://127.0.0.1:{srv.server_address[1]}"
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield stub
    srv.shutdown()
    srv.server_close()
