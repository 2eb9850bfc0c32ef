"""Metrics content, and what reaches a Pushgateway and an Uptime Kuma push URL."""

from __future__ import annotations

import urllib.parse

import pytest

from mailctl.probe.engine import ProbeResult
from mailctl.probe.metrics import ProbeMetrics
from mailctl.probe.push import PushError, to_pushgateway, to_uptime_kuma
from mailctl.secret import Secret
from tests.probe.stub_http import Stub

OK = ProbeResult("inbound", ok=True, send_seconds=0.01, delivery_seconds=0.02,
                 roundtrip_seconds=0.03, folder="INBOX", started_at=1_700_000_000.0,
                 total_seconds=0.05)
BAD = ProbeResult("outbound", stage="send", service="smtp", smtp_code=550,
                  message="smtp send: x@y.test: 550 5.1.1 User unknown", send_seconds=0.01)


def test_failure_sets_success_zero_and_flags_only_its_stage() -> None:
    m = ProbeMetrics()
    m.record(OK)
    m.record(BAD)
    m.record(ProbeResult("inbound", stage="auth", service="imap", message="imap auth: no"))
    text = m.render().decode()
    assert 'mailctl_probe_success{route="inbound"} 0.0' in text
    assert 'mailctl_probe_success{route="outbound"} 0.0' in text
    assert 'mailctl_probe_failed_stage{route="inbound",stage="auth"} 1.0' in text
    assert 'mailctl_probe_failed_stage{route="inbound",stage="send"} 0.0' in text
    assert 'mailctl_probe_failed_stage{route="outbound",stage="send"} 1.0' in text
    assert 'mailctl_probe_last_smtp_code{route="outbound"} 550.0' in text
    assert 'mailctl_probe_failures_total{route="inbound",stage="auth"} 1.0' in text
    # the earlier success is still the last success
    assert 'mailctl_probe_last_success_timestamp_seconds{route="inbound"} 1.70000000005e+09' \
        in text
    assert 'mailctl_probe_last_success_timestamp_seconds{route="outbound"}' not in text
    assert 'mailctl_probe_delivery_duration_seconds_count{route="inbound"} 1.0' in text
    assert 'mailctl_probe_send_duration_seconds_count{route="outbound"} 1.0' in text
    assert 'mailctl_probe_delivery_duration_seconds_count{route="outbound"} 0.0' in text


def test_pushgateway_gets_one_post_per_route_and_no_last_success_for_a_failure(
    http_stub: Stub,
) -> None:
    to_pushgateway(http_stub.url, "mailctl_probe", [OK, BAD], timeout=5)
    assert [(s.method, s.path) for s in http_stub.seen] == [
        ("POST", "/metrics/job/mailctl_probe/route/inbound"),
        ("POST", "/metrics/job/mailctl_probe/route/outbound"),
    ]
    assert all(s.content_type and s.content_type.startswith("text/plain")
               for s in http_stub.seen)
    ok_body, bad_body = (s.body.decode() for s in http_stub.seen)
    assert 'mailctl_probe_success{route="inbound"} 1.0' in ok_body
    assert "mailctl_probe_last_success_timestamp_seconds" in ok_body
    assert 'mailctl_probe_success{route="outbound"} 0.0' in bad_body
    assert "mailctl_probe_last_success_timestamp_seconds" not in bad_body
    assert "mailctl_probe_last_run_timestamp_seconds" in bad_body


def test_pushgateway_replace_uses_put(http_stub: Stub) -> None:
    to_pushgateway(http_stub.url, "j", [OK], timeout=5, replace=True)
    assert [(s.method, s.path) for s in http_stub.seen] == [("PUT", "/metrics/job/j/route/inbound")]


def test_unreachable_pushgateway_is_a_push_error() -> None:
    with pytest.raises(PushError, match="Pushgateway"):
        to_pushgateway("http://127.0.0.1:9", "j", [OK], timeout=2)


def _query(path: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(path).query,
                                       keep_blank_values=True))


def test_uptime_kuma_gets_status_msg_and_ping_in_ms(http_stub: Stub) -> None:
    url = Secret(f"{http_stub.url}/api/push/Tok3nSecretXYZ?status=up&msg=OK&ping=", "${env:K}")
    to_uptime_kuma(url, [OK], timeout=5)
    to_uptime_kuma(url, [OK, BAD], timeout=5)
    up, down = http_stub.seen
    assert up.method == "GET" and up.path.startswith("/api/push/Tok3nSecretXYZ?")
    assert _query(up.path) == {"status": "up", "msg": "OK inbound in 30 ms", "ping": "30"}
    q = _query(down.path)
    assert q["status"] == "down" and q["ping"] == ""
    assert q["msg"] == "outbound: smtp send: x@y.test: 550 5.1.1 User unknown"


def test_uptime_kuma_refusal_is_reported_without_the_token(http_stub: Stub) -> None:
    http_stub.kuma_reply = (404, b'{"ok":false,"msg":"Monitor not found or not active."}')
    url = Secret(f"{http_stub.url}/api/push/Tok3nSecretXYZ", "${env:KUMA_URL}")
    with pytest.raises(PushError) as info:
        to_uptime_kuma(url, [OK], timeout=5)
    text = str(info.value)
    assert "Monitor not found or not active." in text and "${env:KUMA_URL}" in text
    assert "Tok3nSecretXYZ" not in text
