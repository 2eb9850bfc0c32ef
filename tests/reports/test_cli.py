"""The reports commands as a user runs them: usage errors (64) before any side effect,
config errors with positions, pictures, JSON, retention, and logs without report content."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli, write_config
from tests.fixtures.dnsserver import DnsLab
from tests.reports import gen

DAY = 86400
D = "cli.test"


def _files(tmp_path: Path, n: int = 4, days_ago: int = 1) -> list[Path]:
    now = int(time.time())
    out = []
    for i in range(n):
        begin = (now // DAY - days_ago - i) * DAY
        rows = [gen.Row("198.51.100.44", 50 + i, "pass", "pass"),
                gen.Row("192.0.2.77", 3, "fail", "fail", envelope_from="spoof.example")]
        xml = gen.aggregate_xml(gen.STYLES[i % 5], D, rows, report_id=f"c{i}", begin=begin,
                                end=begin + DAY - 1)
        p = tmp_path / f"r{i}.xml.gz"
        p.write_bytes(gen.gz(xml))
        out.append(p)
    return out


@pytest.mark.parametrize(("args", "message"), [
    (["reports", "show", "--since", "yesterday"],
     "error: --since 'yesterday': expected a duration like 7d, 36h, 2w or a date YYYY-MM-DD"),
    (["reports", "show", "--svg", "nodir/x.svg"],
     "error: --svg nodir/x.svg: the directory nodir does not exist (expected an existing "
     "directory)"),
    (["reports", "show", "--png", "nodir/x.png"],
     "error: --png nodir/x.png: the directory nodir does not exist (expected an existing "
     "directory)"),
    (["reports", "import", "missing.xml"],
     "error: missing.xml: no such file (expected a report file or mailbox)"),
    (["reports", "serve", "--listen", "nowhere"],
     "error: expected [host]:port like :9425, got 'nowhere'"),
])
def test_usage_errors_are_one_line_and_touch_nothing(tmp_path: Path, args: list[str],
                                                      message: str) -> None:
    res = run_cli(*args, cwd=tmp_path)
    assert res.code == 64, res.all
    assert res.err.strip() == message
    assert res.out == ""
    assert not (tmp_path / ".mailctl").exists()


def test_config_errors_name_the_spot(tmp_path: Path) -> None:
    write_config(tmp_path, """
        reports:
          store: postgresql+psycopg://user:hunter2@db/reports
          mailboxes:
            - url: imap://dmarc@mail.example
              password: hunter2
    """)
    res = run_cli("reports", "fetch", "--once", cwd=tmp_path)
    assert res.code == 1
    assert "mailctl.yaml:2:" in res.err and "holds a password" in res.err
    assert "mailctl.yaml:5:" in res.err and "must be a secret reference" in res.err
    assert "hunter2" not in res.all


def test_import_show_prune(tmp_path: Path) -> None:
    files = _files(tmp_path)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(gen.XXE)
    res = run_cli("reports", "import", *files, bad, cwd=tmp_path)
    assert res.code == 1
    assert "r0.xml.gz: 1 stored, 0 already stored" in res.out
    assert f"error: {bad}: rejected: refused: the XML declares a DTD" in res.err
    again = run_cli("reports", "import", "--json", *files, cwd=tmp_path)
    assert again.code == 0
    assert [f["duplicates"] for f in json.loads(again.out)["files"]] == [1, 1, 1, 1]
    show = run_cli("reports", "show", "--offline", "--json", "--since", "2d", cwd=tmp_path)
    doc = json.loads(show.out)
    assert doc["version"] == 1 and doc["rejected"] == {"xml_attack": 1}
    dom = doc["domains"][0]
    # windows end at the end of yesterday and the day before: both within 48 hours
    assert dom["domain"] == D and dom["reports"]["dmarc"]["reports"] == 2
    assert {s["name"] for s in dom["sources"]} == {"198.51.100.44", "192.0.2.77"}
    full = json.loads(run_cli("reports", "show", "--offline", "--json", "--since", "30d",
                              cwd=tmp_path).out)
    assert full["domains"][0]["messages"] == 50 + 51 + 52 + 53 + 4 * 3
    assert len(full["domains"][0]["days"]) == 4 * 1  # one class (unknown) per day
    pr = run_cli("reports", "prune", "--json", cwd=tmp_path)
    assert json.loads(pr.out)["reports"] == 0
    write_config(tmp_path, "reports: {retention_days: 2}\n")
    pr = run_cli("reports", "prune", "--json", cwd=tmp_path)
    assert json.loads(pr.out)["reports"] == 2  # the windows that ended over 48 hours ago


def test_show_without_a_store_creates_nothing(tmp_path: Path) -> None:
    res = run_cli("reports", "show", "--json", cwd=tmp_path)
    assert res.code == 0 and json.loads(res.out)["domains"] == []
    assert not (tmp_path / ".mailctl").exists()


def test_pictures_svg_and_png(tmp_path: Path) -> None:
    assert run_cli("reports", "import", *_files(tmp_path, 6), cwd=tmp_path).code == 0
    res = run_cli("reports", "show", "--offline", "--since", "30d", "--svg", "days.svg",
                  "--png", "days.png", cwd=tmp_path)
    assert res.code == 0, res.all
    root = ET.parse(tmp_path / "days.svg").getroot()
    assert root.tag.endswith("svg")
    rects = [r for r in root.iter("{http://www.w3.org/2000/svg}rect") if r.find(
        "{http://www.w3.org/2000/svg}title") is not None]
    assert len(rects) == 6 * 2  # six days: the pass bar and the fail bar of "unknown"
    assert (tmp_path / "days.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "per day" in res.out and "unknown" in res.out


def test_logs_never_carry_report_content(tmp_path: Path) -> None:
    res = run_cli("-vv", "reports", "import", *_files(tmp_path), cwd=tmp_path)
    assert res.code == 0
    for secretish in ("198.51.100.44", "192.0.2.77", "spoof.example", "noreply-dmarc"):
        assert secretish not in res.err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_exposes_metrics(tmp_path: Path, dns_lab: DnsLab) -> None:
    dns_lab.publish(D, '@ TXT "v=spf1 ip4:198.51.100.0/24 -all"')
    write_config(tmp_path, f"""
        providers:
          local: {{type: dms, path: {tmp_path / 'dms'}}}
        domains:
          {D}: {{provider: local, dns: {{spf_extra: ["ip4:198.51.100.0/24"],
                                         mx_hosts: [mx.{D}]}}}}
        reports:
          resolver: "{dns_lab.resolver}"
          dns_timeout: 1
          rdns_lookups: 0
          window_days: 7
    """)
    (tmp_path / "dms").mkdir()
    assert run_cli("reports", "import", *_files(tmp_path), cwd=tmp_path).code == 0
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    p = subprocess.Popen([sys.executable, "-m", "mailctl", "reports", "serve", "--no-fetch",
                          "--listen", f"127.0.0.1:{port}"], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        body = ""
        for _ in range(200):
            try:
                url = f"http://127.0.0.1:{port}/metrics"
                with urllib.request.urlopen(url, timeout=30) as r:
                    body = r.read().decode()
                break
            except OSError:
                time.sleep(0.1)
        lines = set(body.splitlines())
        want = 50 + 51 + 52 + 53
        assert (f'mailctl_reports_messages{{dkim="pass",domain="{D}",'
                f'source="ip4:198.51.100.0/24",source_class="declared",spf="pass"}} {want}.0'
                ) in lines, body[:3000]
        assert (f'mailctl_reports_messages{{dkim="fail",domain="{D}",source="unknown",'
                f'source_class="unknown",spf="fail"}} 12.0') in lines
        assert "192.0.2.77" not in body  # never an address as a label
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=20) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
