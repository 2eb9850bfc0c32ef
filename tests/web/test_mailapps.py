"""Autoconfig and autodiscover: mail apps find their servers by themselves."""

from __future__ import annotations

import imaplib
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from mailctl.config.load import load_config
from mailctl.web.live import ConfigServices
from mailctl.web.settings import ConsoleSettings, MailAppSettings, ServerSettings
from tests.fixtures.mailstack import tls_context
from tests.web.conftest import Site

AD_NS = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"


def _autodiscover_request(address: str) -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request><EMailAddress>{address}</EMailAddress>
  <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>
  </Request></Autodiscover>""".encode()


def _server(root: ET.Element, tag: str) -> dict[str, str]:
    el = root.find(f"./emailProvider/{tag}")
    assert el is not None
    return {c.tag: (c.text or "") for c in el} | {"type": el.get("type", "")}


def test_autoconfig_answers_with_servers_that_accept_the_login(site: Site) -> None:
    alice = f"alice@{site.domain}"
    r = httpx.get(f"{site.url}/.well-known/autoconfig/mail/config-v1.1.xml",
                  params={"emailaddress": alice})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(r.text)
    assert root.find("./emailProvider").get("id") == site.domain  # type: ignore[union-attr]
    imap = _server(root, "incomingServer")
    smtp = _server(root, "outgoingServer")
    info = site.stack.info
    assert imap == {"type": "imap", "hostname": info.host, "port": str(info.ports.imaps),
                    "socketType": "SSL", "authentication": "password-cleartext",
                    "username": "%EMAILADDRESS%"}
    assert (smtp["hostname"], smtp["port"], smtp["socketType"]) == (
        info.host, str(info.ports.submission), "STARTTLS")
    # What the file says works: a client following it logs in.
    conn = imaplib.IMAP4_SSL(imap["hostname"], int(imap["port"]),
                             ssl_context=tls_context(info), timeout=10)
    try:
        assert conn.login(alice, site.passwords[alice])[0] == "OK"
    finally:
        conn.logout()


def test_autoconfig_by_host_name(site: Site) -> None:
    r = httpx.get(f"{site.url}/mail/config-v1.1.xml",
                  headers={"Host": f"autoconfig.{site.domain}"})
    assert r.status_code == 200
    assert ET.fromstring(r.text).find("./emailProvider/domain").text == site.domain  # type: ignore[union-attr]


@pytest.mark.parametrize("query", ["emailaddress=someone@not-declared.test",
                                   "emailaddress=not-an-address"])
def test_autoconfig_refuses_other_domains(site: Site, query: str) -> None:
    r = httpx.get(f"{site.url}/.well-known/autoconfig/mail/config-v1.1.xml?{query}")
    assert r.status_code == 404


def test_autodiscover_answers_outlook(site: Site) -> None:
    alice = f"alice@{site.domain}"
    r = httpx.post(f"{site.url}/autodiscover/autodiscover.xml",
                   content=_autodiscover_request(alice.upper()))
    assert r.status_code == 200
    protocols = ET.fromstring(r.text).findall(f".//{AD_NS}Protocol")
    got = {p.findtext(f"{AD_NS}Type"): {c.tag.replace(AD_NS, ""): c.text for c in p}
           for p in protocols}
    info = site.stack.info
    assert got["IMAP"]["Server"] == info.host and got["IMAP"]["Port"] == str(info.ports.imaps)
    assert got["IMAP"]["SSL"] == "on" and got["IMAP"]["LoginName"] == alice
    assert got["SMTP"]["Port"] == str(info.ports.submission)
    assert got["SMTP"]["Encryption"] == "TLS" and got["SMTP"]["SSL"] == "off"
    r = httpx.post(f"{site.url}/Autodiscover/Autodiscover.xml",
                   content=_autodiscover_request(alice))
    assert r.status_code == 200


@pytest.mark.parametrize("body,status", [
    (b"not xml at all", 400),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
     b"<Autodiscover><Request><EMailAddress>&b;</EMailAddress></Request></Autodiscover>", 400),
    (b"<Autodiscover><Request/></Autodiscover>", 400),
    (b"<x>" + b"a" * 70000 + b"</x>", 413),
])
def test_autodiscover_refuses_bad_requests(site: Site, body: bytes, status: int) -> None:
    r = httpx.post(f"{site.url}/autodiscover/autodiscover.xml", content=body)
    assert r.status_code == status


def _hosted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, console: str = "") -> ConfigServices:
    monkeypatch.setenv("MIGADU_KEY", "k")
    monkeypatch.setenv("MAILCOW_KEY", "k")
    path = tmp_path / "mailctl.yaml"
    path.write_text(textwrap.dedent("""\
        providers:
          hosted: {type: migadu, user: admin@example.org, api_key: "${env:MIGADU_KEY}"}
          cow: {type: mailcow, url: "https://cow.example.org", api_key: "${env:MAILCOW_KEY}"}
        domains:
          hosted.test: {provider: hosted}
          cow.test: {provider: cow}
          moo.test: {provider: cow, dns: {mx_hosts: [mx.moo.test]}}
        """))
    config = load_config(path)
    settings = ConsoleSettings.model_validate(
        {"break_glass": {"enabled": True, "password_hash": "${env:X}"}, **(
            {"mail_apps": {"moo.test": MailAppSettings(
                imap=ServerSettings(host="imap.moo.test", port=143, security="starttls"),
                smtp=ServerSettings(host="smtp.moo.test", port=587, security="starttls"))}}
            if console else {})})
    return ConfigServices(config, settings)


def test_servers_come_from_the_provider_profile(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    services = _hosted(tmp_path, monkeypatch)
    m = services.mail_servers("hosted.test")
    assert (m.imap.host, m.imap.port, m.imap.security) == ("imap.migadu.com", 993, "ssl")
    assert (m.smtp.host, m.smtp.port, m.smtp.security) == ("smtp.migadu.com", 465, "ssl")
    assert m.source == "profile"
    m = services.mail_servers("cow.test")  # mailcow's profile lists no SRV: its MX host
    assert (m.imap.host, m.imap.port, m.smtp.port) == ("mail.cow.test", 993, 465)
    m = services.mail_servers("moo.test")
    assert m.imap.host == "mx.moo.test"


def test_servers_from_the_console_config_win(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    services = _hosted(tmp_path, monkeypatch, console="override")
    m = services.mail_servers("moo.test")
    assert (m.imap.host, m.imap.port, m.imap.security, m.source) == (
        "imap.moo.test", 143, "starttls", "config")
    from mailctl.web.app import ConsoleSecrets, create_app

    app = create_app(services, services.settings, ConsoleSecrets(None, b"k" * 32),
                     public_url="http://127.0.0.1:9")
    with TestClient(app) as client:
        r = client.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                       params={"emailaddress": "x@moo.test"})
        assert "<socketType>STARTTLS</socketType>" in r.text
        assert "<hostname>smtp.moo.test</hostname>" in r.text


def test_serve_runs_the_console_beside_the_accounts_api(site: Site) -> None:
    from mailctl.accounts.context import open_service
    from mailctl.accounts.web import create_app as accounts_app
    from mailctl.web.serve import Combined

    config = load_config(site.config_path)
    svc = open_service(config)
    try:
        app = Combined(accounts_app(svc), site.server.server.config.app)
        with TestClient(app) as client:
            r = client.post("/?t=nonsense")
            assert r.status_code == 403 and r.json()["type"] == "error"
            assert client.get("/health").json() == {"status": "ok"}
            page = client.get("/")
            assert page.status_code == 200 and "Sign in" in page.text
            r = client.get("/.well-known/autoconfig/mail/config-v1.1.xml",
                           params={"emailaddress": f"alice@{site.domain}"})
            assert r.status_code == 200
    finally:
        svc.store.close()
        config.close()
