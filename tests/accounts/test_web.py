"""The web API over real HTTP against `mailctl serve`: no redirects, refusals logged
(without the token), headers on every answer, and what uvicorn itself answers."""

from __future__ import annotations

import http.client
import json
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.accounts.conftest import Server, Site, make_site, secret_of


def raw(server: Server, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed, headers as sent (lower-cased names)."""
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request(method, path, body=b"" if method == "POST" else None)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def is_json_error(status: int, headers: dict[str, str], body: bytes, want: int) -> Any:
    assert status == want, body
    assert headers["content-type"] == "application/json" and "location" not in headers
    doc = json.loads(body)
    assert doc["status_code"] == want and doc["type"] == "error"
    return doc


def test_both_spellings_answer_and_nothing_redirects(site: Site,
                                                     serve: Callable[..., Server]) -> None:
    secret = secret_of(site.json("tokens", "add", "t", "--maxuse", "10"))
    server = serve(site)
    for path in ("/", "/new_email", "/new_email/"):
        status, headers, body = raw(server, "POST", f"{path}?t={secret}")
        assert status == 200 and "location" not in headers, (path, body)
        assert json.loads(body)["email"].startswith("tmp.")
    # Starlette would have sent these to http://<Host header>/... with the query string
    for path in ("/health/", "/new_email//", "/NEW_EMAIL/", "/new_email/x", "//new_email/"):
        is_json_error(*raw(server, "POST", f"{path}?t={secret}"), want=404)
    assert secret not in server.log.read_text()


def test_headers_on_every_answer(tmp_path: Path, serve: Callable[..., Server]) -> None:
    site = make_site(tmp_path, tmp_path / "dms",
                     accounts_yaml="accounts:\n  rate_limit: {per_minute: 1, burst: 1}\n")
    secret = secret_of(site.json("tokens", "add", "t"))
    server = serve(site)
    ok = raw(server, "POST", f"/?t={secret}")
    limited = raw(server, "POST", f"/?t={secret}")
    wrong_method = raw(server, "GET", "/")
    missing = raw(server, "POST", "/nowhere")
    health = raw(server, "GET", "/health")
    assert ok[0] == 200 and "password" in json.loads(ok[2])
    is_json_error(*limited, want=429)
    assert int(limited[1]["retry-after"]) >= 1
    is_json_error(*wrong_method, want=405)
    assert wrong_method[1]["allow"] == "POST"
    is_json_error(*missing, want=404)
    for status, headers, _ in (ok, limited, wrong_method, missing, health):
        assert headers["cache-control"] == "no-store", status
        assert headers["x-content-type-options"] == "nosniff", status
        assert "server" not in headers, status  # no uvicorn banner


def test_refusals_are_logged_with_the_client_and_never_the_token(
        tmp_path: Path, serve: Callable[..., Server]) -> None:
    site = make_site(tmp_path, tmp_path / "dms",
                     accounts_yaml="accounts:\n  rate_limit: {per_minute: 1, burst: 2}\n")
    secret = secret_of(site.json("tokens", "add", "t"))
    server = serve(site)
    guess = "brute-force-guess-" + "q" * 20
    codes = [raw(server, "POST", f"/new_email?t={guess}{i}")[0] for i in range(3)]
    assert codes == [403, 403, 429]
    assert raw(server, "GET", f"/?t={secret}")[0] == 405
    assert raw(server, "DELETE", "/new_email")[0] == 405
    assert raw(server, "POST", f"/t/{secret}")[0] == 404  # a secret in a path we do not serve
    assert raw(server, "POST", "/x%0Aforged%20200%20line")[0] == 404  # log injection
    assert raw(server, "POST", "/" + "ab." * 100)[0] == 404  # a long path is cut
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and server.log.read_text().count(" 404 ") < 3:
        time.sleep(0.1)
    log = server.log.read_text()
    lines = [ln for ln in log.splitlines() if "mailctl.accounts.web" in ln]
    assert sum(" POST /new_email 403 " in ln for ln in lines) == 2, log
    assert sum(" POST /new_email 429 " in ln for ln in lines) == 1, log
    assert sum(" GET / 405 " in ln for ln in lines) == 1, log
    assert sum(" DELETE /new_email 405 " in ln for ln in lines) == 1, log
    assert sum(" 404 " in ln for ln in lines) == 3, log
    assert any("/ab.ab.ab." in ln and "ab." * 30 not in ln for ln in lines), log
    assert all("127.0.0.1 " in ln for ln in lines)
    assert guess not in log and secret not in log and "?t=" not in log
    assert not any(ln.startswith("forged") for ln in log.splitlines())


def test_what_uvicorn_answers_itself_is_as_documented(site: Site,
                                                      serve: Callable[..., Server]) -> None:
    """docs/accounts.md: a request uvicorn cannot parse, or whose head outgrows 16 KiB
    before it is complete, gets its plain-text 400 and a closed connection; the server
    goes on serving."""
    server = serve(site)
    host, port = server.url.removeprefix("http://").split(":")

    def exchange(*chunks: bytes) -> bytes:
        with socket.create_connection((host, int(port)), timeout=30) as s:
            for chunk in chunks:
                s.sendall(chunk)
                time.sleep(0.3)
            data = b""
            while chunk := s.recv(65536):
                data += chunk
            return data

    garbage = exchange(b"NOT HTTP AT ALL\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400 ") and b"text/plain" in garbage
    assert garbage.endswith(b"Invalid HTTP request received.")
    slow_big = exchange(b"POST /?t=" + b"a" * 10_000, b"a" * 10_000)
    assert slow_big.startswith(b"HTTP/1.1 400 ")
    assert raw(server, "GET", "/health")[0] == 200
    assert "Invalid HTTP request received." in server.log.read_text()


def test_a_websocket_upgrade_is_answered_as_plain_http(site: Site,
                                                      serve: Callable[..., Server]) -> None:
    server = serve(site)
    host, port = server.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("GET", "/new_email", headers={
            "Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
        resp = conn.getresponse()
        status, headers = resp.status, {k.lower(): v for k, v in resp.getheaders()}
        is_json_error(status, headers, resp.read(), want=405)
    finally:
        conn.close()
