"""The relay is one declaration for the server and for DNS (issue 11, the incident).

A real sandbox (Postfix + Dovecot over docker-mailserver files) sends mail out
through a relay stand-in: a local SMTP server that requires AUTH, started here.
`dns apply` publishes SPF at a real Knot and writes dms's relay files in the
same plan; after `relays: [mailgun]` becomes `relays: [brevo]`, the next
message goes through the other stand-in and SPF names the new relay.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.dns.conftest import KEY_2048
from tests.fixtures.cli import Result, run_cli, write_config
from tests.fixtures.dnsserver import DnsLab, free_port
from tests.fixtures.mailstack import MailStack, make_message, new_marker, submit

MAILGUN_PW = "mg-relay-secret-" + "1" * 12
BREVO_PW = "brevo-relay-secret-" + "2" * 12
ALICE_PW = "alice-password-123456"


@dataclass
class StandIn:
    """A relay service: requires AUTH with one login, keeps what it receives."""

    user: str
    password: str
    port: int = 0
    received: list[dict[str, Any]] = field(default_factory=list)
    failed_logins: int = 0
    controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult, LoginPassword

        stand_in = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                stand_in.received.append({"auth": session.auth_data, "from": envelope.mail_from,
                                          "to": list(envelope.rcpt_tos),
                                          "data": envelope.content})
                return "250 OK queued"

        def authenticator(server: Any, session: Any, envelope: Any, mechanism: str,
                          auth_data: Any) -> AuthResult:
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login.decode() == self.user
                  and auth_data.password.decode() == self.password)
            if not ok:
                self.failed_logins += 1
            return AuthResult(success=ok, auth_data=self.user if ok else None)

        self.port = free_port()
        # plain AUTH without TLS, as Postfix speaks to it on loopback in this test
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                     authenticator=authenticator, auth_required=True,
                                     auth_require_tls=False)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()

    def wait_for(self, marker: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.received:
                if marker.encode() in message["data"]:
                    return message
            time.sleep(0.1)
        raise AssertionError(f"relay on {self.port} got no message with {marker}")


@pytest.fixture
def stand_ins() -> Iterator[tuple[StandIn, StandIn]]:
    mailgun, brevo = StandIn("mg-user", MAILGUN_PW), StandIn("brevo-user", BREVO_PW)
    mailgun.start()
    brevo.start()
    try:
        yield mailgun, brevo
    finally:
        mailgun.stop()
        brevo.stop()


def _config(tmp: Path, lab: DnsLab, stack: MailStack, relay: str, mg: int, br: int) -> None:
    write_config(tmp, f"""
        providers:
          local: {{type: dms, path: {stack.dms_dir}}}
        dns:
          hosts:
            knot:
              class: octodns_bind.Rfc2136Provider
              host: 127.0.0.1
              port: {lab.auth_port}
              key_name: {lab.tsig_name}
              key_secret: "${{env:TSIG_SECRET}}"
              key_algorithm: hmac-sha256
        domains:
          relay.test:
            provider: local
            dns:
              host: knot
              relays: [{relay}]
              relay_params:
                mailgun: {{dkim_key: "{KEY_2048}"}}
                brevo: {{dkim_key: "{KEY_2048}"}}
              relay_smtp:
                mailgun: {{host: 127.0.0.1, port: {mg}, username: mg-user,
                          password: "${{env:MG_PASS}}"}}
                brevo: {{host: 127.0.0.1, port: {br}, username: brevo-user,
                        password: "${{env:BREVO_PASS}}"}}
    """)


def _dns(tmp: Path, lab: DnsLab, *args: str) -> Result:
    return run_cli("dns", *args, cwd=tmp, env={"TSIG_SECRET": lab.tsig_secret,
                                               "MG_PASS": MAILGUN_PW, "BREVO_PASS": BREVO_PW})


def _send(stack: MailStack) -> str:
    marker = new_marker()
    refused = submit(stack.info, "alice@relay.test", ALICE_PW, ["bob@outside.test"],
                     make_message(marker, from_addr="alice@relay.test", to="bob@outside.test"))
    assert refused == {}
    return marker


def test_relay_switch_moves_server_and_spf_together(
        tmp_path: Path, world: DnsLab, fresh_mailstack: MailStack,
        stand_ins: tuple[StandIn, StandIn]) -> None:
    lab, stack = world, fresh_mailstack
    mailgun, brevo = stand_ins
    lab.publish("mailgun.org", 'mailgun.org. TXT "v=spf1 ip4:203.0.113.200/29 -all"')
    lab.publish("relay.test", "www A 192.0.2.80\nmail A 198.51.100.10", updatable=True)
    stack.set(accounts={"alice@relay.test": ALICE_PW})
    outputs: list[Result] = []

    _config(tmp_path, lab, stack, "mailgun", mailgun.port, brevo.port)
    plan = _dns(tmp_path, lab, "plan", "--json")
    outputs.append(plan)
    data = json.loads(plan.out)
    assert data["server_relay"] == [{
        "domain": "relay.test", "directory": str(stack.dms_dir.resolve()), "relay": "mailgun",
        "old": None, "new": f"[127.0.0.1]:{mailgun.port}", "credentials": "set",
        "password_ref": "${env:MG_PASS}"}]
    outputs.append(applied := _dns(tmp_path, lab, "apply", "--yes", "--wait", "0"))
    assert applied.code == 0, applied.all
    sasl = stack.dms_dir / "postfix-sasl-password.cf"
    assert os.stat(sasl).st_mode & 0o777 == 0o600
    assert (stack.dms_dir / "postfix-relaymap.cf").read_text() == \
        f"@relay.test [127.0.0.1]:{mailgun.port}\n"
    spf = [v for v in lab.rrset("relay.test", "TXT") if "spf1" in v]
    assert spf == ['"v=spf1 mx include:mailgun.org ~all"']

    first = mailgun.wait_for(_send(stack))
    assert first["auth"] == "mg-user" and first["to"] == ["bob@outside.test"]

    _config(tmp_path, lab, stack, "brevo", mailgun.port, brevo.port)  # the one-line change
    plan = _dns(tmp_path, lab, "plan", "--json")
    outputs.append(plan)
    data = json.loads(plan.out)
    apex = next(c for c in data["zones"][0]["changes"] if c["name"] == "relay.test")
    assert [v for v in apex["new"] if v.startswith("v=spf1")] == [
        "v=spf1 mx include:spf.brevo.com ~all"]
    assert [(c["old"], c["new"], c["credentials"]) for c in data["server_relay"]] == [
        (f"[127.0.0.1]:{mailgun.port}", f"[127.0.0.1]:{brevo.port}", "changed")]
    human = _dns(tmp_path, lab, "plan")
    outputs.append(human)
    assert f"[127.0.0.1]:{mailgun.port} → [127.0.0.1]:{brevo.port}" in human.out
    outputs.append(applied := _dns(tmp_path, lab, "apply", "--yes", "--wait", "0"))
    assert applied.code == 0, applied.all

    before = len(mailgun.received)
    second = brevo.wait_for(_send(stack))
    assert second["auth"] == "brevo-user"
    assert len(mailgun.received) == before and mailgun.failed_logins == 0
    assert brevo.failed_logins == 0
    assert _dns(tmp_path, lab, "plan", "--detailed-exitcode").code == 0
    for result in outputs:  # the relay passwords never leave the 0600 file
        assert MAILGUN_PW not in result.all and BREVO_PW not in result.all
    assert MAILGUN_PW not in (stack.dms_dir / "postfix-relaymap.cf").read_text()
    assert BREVO_PW in sasl.read_text() and MAILGUN_PW not in sasl.read_text()
