"""tokens / accounts through the real command line."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.accounts.conftest import NO_RATE_LIMIT, Site, make_site
from tests.accounts.test_sandbox import decode_qr


def test_token_lifecycle_never_resets_usecount(site: Site) -> None:
    tok = site.json("tokens", "add", "oneday", "--expiry", "1d", "--maxuse", "3",
                    "--prefix", "tmp.")
    assert tok["usecount"] == 0 and tok["url"].startswith("https://example.org/new_email?t=")
    assert tok["state"] == "active" and tok["secret_stored"] is False
    secret = tok["url"].split("t=")[1].split("&")[0]
    assert len(secret) >= 32
    assert site.cli("accounts", "add", "a1@example.org", "--token", "oneday").code == 0
    modded = site.json("tokens", "mod", "oneday", "--maxuse", "10", "--expiry", "2w",
                       "--prefix", "ev.")
    assert (modded["usecount"], modded["maxuse"], modded["expiry"], modded["prefix"]) == \
        (1, 10, "2w", "ev.")
    listed = site.json("tokens", "list")
    assert [t["name"] for t in listed] == ["oneday"] and "url" not in listed[0]
    plain = site.cli("tokens", "list")
    assert secret not in plain.all and "used 1 of 10, active" in plain.out
    until = site.json("tokens", "mod", "oneday", "--until", "2999-01-01")["valid_until"]
    assert until == "2999-01-01T23:59:59Z"
    assert site.json("tokens", "mod", "oneday", "--until", "none")["valid_until"] is None
    assert site.json("tokens", "disable", "oneday")["disabled"] is True
    assert site.json("tokens", "mod", "oneday", "--enable")["disabled"] is False
    # hashed (the default): the URL was shown once, and `show` says how to get a new one
    shown = site.cli("tokens", "show", "oneday")
    assert shown.code == 0 and secret not in shown.all and "url" not in shown.out
    assert "tokens rotate oneday" in shown.err
    gone = site.json("tokens", "del", "oneday")
    assert gone == {"deleted": "oneday", "accounts_kept": 1}
    assert site.json("accounts", "list")[0]["token"] == "oneday"
    r = site.cli("tokens", "del", "oneday")
    assert r.code == 1 and "no token named oneday" in r.err and "Traceback" not in r.all


@pytest.mark.parametrize("code", ["1h", "7d", "2w", "1y", "never", "30min", "1mo"])
def test_expiry_codes_accepted(site: Site, code: str) -> None:
    assert site.json("tokens", "add", "t", "--expiry", code)["expiry"] == code


@pytest.mark.parametrize("code", ["1m", "0d", "d", "1 d", "7days", "-1h", ""])
def test_expiry_codes_refused_and_nothing_stored(site: Site, code: str) -> None:
    r = site.cli("tokens", "add", "t", "--expiry", code)
    assert r.code == 64 and "invalid expiry" in r.err
    assert site.json("tokens", "list") == []


def test_bad_names_prefixes_domains_and_dates(site: Site) -> None:
    assert "invalid token name" in site.cli("tokens", "add", "a/b").err
    assert "invalid prefix" in site.cli("tokens", "add", "t", "--prefix", "Bad Prefix").err
    assert "not declared" in site.cli("tokens", "add", "t", "--domain", "other.org").err
    assert "invalid date" in site.cli("tokens", "add", "t", "--until", "tomorrow").err
    assert site.json("tokens", "list") == []


def test_until_date_stops_redemption(site: Site) -> None:
    ends = int(time.time()) + 10  # later than the command needs to start and check it
    soon = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(ends))
    tok = site.json("tokens", "add", "brief", "--until", soon)
    assert tok["valid_until"] == soon.replace("+00:00", "Z") and tok["state"] == "active"
    time.sleep(max(0.0, ends - time.time() + 0.5))
    assert site.json("tokens", "show", "brief")["state"] == "expired"
    r = site.cli("accounts", "add", "x@example.org", "--token", "brief")
    assert r.code == 1 and "no longer valid" in r.err
    assert site.dms_accounts() == set()


def test_qr_codes_decode_to_the_invite_url(site: Site) -> None:
    make_site(site.dir, site.dms, accounts_yaml=NO_RATE_LIMIT + "  token_secrets: stored\n")
    url = site.json("tokens", "add", "party")["url"]
    assert site.json("tokens", "show", "party")["url"] == url  # stored: shown again
    png, svg = site.dir / "party.png", site.dir / "party.svg"
    assert site.cli("tokens", "qr", "party", "--png", png, "--svg", svg).code == 0
    assert decode_qr(png) == [f"DCACCOUNT:{url}"]
    raster = site.dir / "svg.png"
    if subprocess.run(["which", "rsvg-convert"], capture_output=True).returncode:
        pytest.skip("rsvg-convert not installed (apt-get install librsvg2-bin)")
    subprocess.run(["rsvg-convert", "-b", "white", str(svg), "-o", str(raster)], check=True)
    assert decode_qr(raster) == [f"DCACCOUNT:{url}"]
    term = site.cli("tokens", "qr", "party")
    assert term.code == 0
    assert decode_qr(terminal_to_pbm(term.out, site.dir / "term.pbm")) == [f"DCACCOUNT:{url}"]


def terminal_to_pbm(text: str, path: Path, scale: int = 6) -> Path:
    """Half-block terminal art back to pixels (█ both, ▀ upper, ▄ lower dark-on-light)."""
    rows: list[list[int]] = []
    for line in text.splitlines():
        if not line.strip() or not set(line) <= set("█▀▄ "):
            continue
        top = [1 if ch in " ▄" else 0 for ch in line]  # light glyph parts are the ink
        bottom = [1 if ch in " ▀" else 0 for ch in line]
        rows += [top, bottom]
    width = max(len(r) for r in rows)
    pad = 4
    out = [[0] * (width + 2 * pad) for _ in range(pad)]
    out += [[0] * pad + r + [0] * (width - len(r) + pad) for r in rows]
    out += [[0] * (width + 2 * pad) for _ in range(pad)]
    lines = [f"P1\n{len(out[0]) * scale} {len(out) * scale}"]
    for r in out:
        px = " ".join(str(v) for v in r for _ in range(scale))
        lines += [px] * scale
    path.write_text("\n".join(lines) + "\n")
    return path


def test_admin_account_json_and_list_filters(site: Site) -> None:
    site.json("tokens", "add", "t", "--expiry", "7d")
    made = site.json("accounts", "add", "Bob@Example.org", "--token", "t")
    assert made["email"] == "bob@example.org" and made["expiry"] == "7d"
    assert "password" not in made and made["token"] == "t"
    site.json("accounts", "add", "carol@example.org")
    assert [a["address"] for a in site.json("accounts", "list", "--token", "t")] == \
        ["bob@example.org"]
    assert len(site.json("accounts", "list")) == 2
    assert site.dms_accounts() == {"bob@example.org", "carol@example.org"}
    again = site.cli("accounts", "add", "bob@example.org")
    assert again.code == 1 and "already exists" in again.err


def test_prune_dry_run_calls_nothing(site: Site) -> None:
    site.json("tokens", "add", "short", "--expiry", "1s")
    site.json("accounts", "add", "gone@example.org", "--token", "short")
    time.sleep(1.2)
    before = (site.dms / "postfix-accounts.cf").read_text()
    dry = site.json("accounts", "prune", "--dry-run")
    assert dry["removed"] == ["gone@example.org"]
    assert (site.dms / "postfix-accounts.cf").read_text() == before
    assert site.json("tokens", "show", "short")["usecount"] == 1
    assert site.json("accounts", "prune")["removed"] == ["gone@example.org"]
    assert site.dms_accounts() == set() and site.json("accounts", "list") == []


def test_store_location_from_config_env_and_default(site: Site, tmp_path: Path) -> None:
    site.json("tokens", "add", "here")
    assert (site.dir / "mailctl-accounts.db").exists()
    other = tmp_path / "elsewhere.db"
    env_site = Site(site.dir, site.dms, site.domain, {"MAILCTL_DB": f"sqlite:///{other}"})
    assert env_site.json("tokens", "list") == []
    assert other.exists()
    (tmp_path / "c").mkdir()
    cfg = make_site(tmp_path / "c", tmp_path / "c" / "dms",
                    accounts_yaml="accounts:\n  database: sqlite:///rel.db\n")
    cfg.json("tokens", "add", "x")
    assert (tmp_path / "c" / "rel.db").exists()


def test_bad_accounts_section_is_a_positioned_error(site: Site) -> None:
    make_site(site.dir, site.dms, accounts_yaml="accounts:\n  databse: x\n")
    r = site.cli("tokens", "list")
    assert r.code == 1 and re.search(r"mailctl.yaml:\d+:\d+", r.err) and "databse" in r.err


def test_version_stays_fast() -> None:
    out = subprocess.run([sys.executable, "-X", "importtime", "-m", "mailctl", "--version"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "mailctl" in out.stdout
    for heavy in ("sqlalchemy", "alembic", "starlette", "segno", "uvicorn"):
        assert f" {heavy}" not in out.stderr
