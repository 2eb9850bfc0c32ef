"""What a provider's error body becomes in a report: its own words, on one bounded line."""

from __future__ import annotations

import httpx

from mailctl.providers.http.client import MAX_DETAIL, provider_message


def _resp(status: int, body: bytes, ctype: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers={"Content-Type": ctype})


def test_html_pages_become_their_title() -> None:
    page = (b"<html>\r\n<head><title>503 Service\r\n Temporarily Unavailable</title></head>"
            b"<body><h1>503</h1>" + b"x" * 5000 + b"</body></html>")
    assert provider_message(_resp(503, page, "text/html")) == \
        "an HTML error page: 503 Service Temporarily Unavailable"
    assert provider_message(_resp(502, b"<html><body>oops</body></html>", "text/plain")) == \
        "an HTML error page"


def test_json_and_text_are_one_bounded_line() -> None:
    long = b'{"error": "' + b"word " * 200 + b'"}'
    msg = provider_message(_resp(400, long, "application/json"))
    assert len(msg) == MAX_DETAIL and msg.endswith("…") and "\n" not in msg
    assert provider_message(_resp(403, b'{"type":"error","msg":"API read\\/write access '
                                       b'denied"}', "application/json")) == \
        "API read/write access denied"
    assert provider_message(_resp(500, b"line one\n  line two\n", "text/plain")) == \
        "line one line two"
    assert provider_message(_resp(500, b"", "text/plain")) == "HTTP 500 Internal Server Error"
    assert provider_message(_resp(400, b'{"msg": ["object_exists", "a@b.c"]}',
                                  "application/json")) == "object_exists a@b.c"
