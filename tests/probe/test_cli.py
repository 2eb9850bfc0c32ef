"""`mailctl probe ...` as a user runs it: real CLI process, real sandbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.cli import run_cli, write_config
from tests.fixtures.mailstack import MailStack, free_ports, require_postfix
from tests.probe.helpers import mailbox_state, new_account, route_dict
from tests.probe.stub_http import Stub


def _config(tmp_path: Path, routes: dict[str, Any], **probe: Any) -> Path:
    path = tmp_path / "mailctl.yaml"
    path.write_text(yaml.safe_dump({"probe": {"routes": routes, **probe}}))
    return path


def test_run_json_reports_a_passing_and_a_failing_route(
    mailstack: MailStack, tmp_path: Path
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack, "Cli-Probe-Pw-9")
    routes = {"good": route_dict(mailstack.info, user, "CLI_PW"),
              "bad": route_dict(mailstack.info, user, "CLI_PW_WRONG")}
    _config(tmp_path, routes)
    env = {"CLI_PW": pw, "CLI_PW_WRONG": "Cli-Wrong-Pw-8"}
    res = run_cli("probe", "run", "--json", cwd=tmp_path, env=env)
    assert res.code == 1
    out = json.loads(res.out)
    by = {r["route"]: r for r in out["routes"]}
    assert out["ok"] is False
    assert by["good"]["ok"] is True and 0 < by["good"]["roundtrip_seconds"] < 5
    assert (by["bad"]["stage"], by["bad"]["service"]) == ("auth", "imap")
    for secret in (pw, "Cli-Wrong-Pw-8"):
        assert secret not in res.all

    only = run_cli("probe", "run", "--route", "good", cwd=tmp_path, env=env)
    assert only.code == 0, only.all
    assert only.out.startswith("good: ok  roundtrip ")
    assert mailbox_state(mailstack.info, user, pw) == {}


def test_literal_password_is_a_positioned_config_error(tmp_path: Path) -> None:
    write_config(tmp_path, """
        probe:
          routes:
            r:
              sender: a@b.test
              smtp: {host: 127.0.0.1, tls: none}
              imap: {host: 127.0.0.1, username: a@b.test, password: hunter2-literal}
    """)
    res = run_cli("validate", cwd=tmp_path)
    assert res.code == 1
    assert "mailctl.yaml:6:" in res.err and "secret reference" in res.err
    res = run_cli("probe", "run", cwd=tmp_path)
    assert res.code == 1 and "secret reference" in res.err


def test_unset_secret_and_missing_routes_are_clear_errors(tmp_path: Path) -> None:
    _config(tmp_path, {"r": {"sender": "a@b.test", "smtp": {"host": "h", "tls": "none"},
                             "imap": {"host": "h", "username": "u",
                                      "password": "${env:PROBE_UNSET_VAR}"}}})
    res = run_cli("probe", "run", cwd=tmp_path)
    assert res.code == 1
    assert "probe.routes.r.imap.password" in res.err and "PROBE_UNSET_VAR" in res.err
    res = run_cli("probe", "run", "--route", "nope", cwd=tmp_path, env={"PROBE_UNSET_VAR": "x"})
    assert res.code == 1 and "unknown route 'nope'" in res.err
    (tmp_path / "mailctl.yaml").write_text("providers: {}\n")
    res = run_cli("probe", "run", cwd=tmp_path)
    assert res.code == 1 and "no probe routes" in res.err


def test_push_sends_to_pushgateway_and_uptime_kuma(
    mailstack: MailStack, tmp_path: Path, http_stub: Stub
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack, "Push-Probe-Pw-3")
    kuma_url = f"{http_stub.url}/api/push/KumaTok9?status=up&msg=OK&ping="
    route = route_dict(mailstack.info, user, "PUSH_PW", uptime_kuma="${env:KUMA_URL}")
    _config(tmp_path, {"mx": route}, push={"pushgateway": http_stub.url})
    res = run_cli("probe", "push", "--json", cwd=tmp_path,
                  env={"PUSH_PW": pw, "KUMA_URL": kuma_url})
    assert res.code == 0, res.all
    out = json.loads(res.out)
    assert out["pushes"] == {"pushgateway": "ok", "uptime-kuma mx": "ok"}
    gw, kuma = http_stub.seen
    assert (gw.method, gw.path) == ("POST", "/metrics/job/mailctl_probe/route/mx")
    assert 'mailctl_probe_success{route="mx"} 1.0' in gw.body.decode()
    assert kuma.method == "GET" and "status=up" in kuma.path and "ping=" in kuma.path
    assert "KumaTok9" not in res.all and pw not in res.all


def test_serve_exposes_metrics_and_stops_on_sigterm(
    mailstack: MailStack, tmp_path: Path
) -> None:
    require_postfix(mailstack.info)
    user, pw = new_account(mailstack, "Serve-Probe-Pw-4")
    _config(tmp_path, {"mx": route_dict(mailstack.info, user, "SERVE_PW")})
    port = free_ports(1)[0]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    env.update(SERVE_PW=pw, NO_COLOR="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailctl", "probe", "serve", "--listen", f"127.0.0.1:{port}",
         "--interval", "1"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        text, deadline = "", time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                    text = r.read().decode()
                if 'mailctl_probe_delivery_duration_seconds_count{route="mx"} 2.0' in text:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert 'mailctl_probe_success{route="mx"} 1.0' in text
        assert 'mailctl_probe_delivery_duration_seconds_count{route="mx"} 2.0' in text
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "mx: ok" in err and pw not in out + err + text


def test_version_does_not_import_the_probe_libraries(tmp_path: Path) -> None:
    code = ("import sys, runpy; sys.argv=['mailctl','--help'];\n"
            "try: runpy.run_module('mailctl', run_name='__main__')\n"
            "except SystemExit: pass\n"
            "print([m for m in ('prometheus_client','mailctl.probe.engine') if m in sys.modules])")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert res.stdout.strip().endswith("[]"), res.stdout + res.stderr


pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
