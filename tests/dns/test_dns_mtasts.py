"""MTA-STS policies fetched from a local HTTPS server with a test CA; TLS-RPT."""

from __future__ import annotations

import datetime
import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailctl.dns.context import HttpsOptions
from mailctl.dns.findings import Severity, Status
from mailctl.dns.stspolicy import parse_policy, policy_id, render_policy
from tests.dns.conftest import check, codes, finding, migadu_spec, migadu_zone
from tests.fixtures.dnsserver import DnsLab, free_port

DOMAINS = ["sts.test", "stsbad.test"]
POLICIES: dict[str, tuple[int, str, str]] = {}  # host -> (status, content type, body)


def _make_ca(tmp: Path) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailctl test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    sans = [x509.DNSName(f"mta-sts.{d}") for d in DOMAINS]
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mta-sts")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp / "cert.pem").write_bytes(cert.public_bytes(pem))
    (tmp / "key.pem").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        host = (self.headers.get("Host") or "").split(":")[0]
        status, ctype, body = POLICIES.get(host, (404, "text/plain", "not here"))
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if 300 <= status < 400:
            self.send_header("Location", "https://elsewhere.test/policy")
        self.end_headers()
        if self.path == "/.well-known/mta-sts.txt":
            self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpsOptions]:
    ca, cert, key = _make_ca(tmp_path_factory.mktemp("ca"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Handler)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield HttpsOptions(ssl_context=ssl.create_default_context(cafile=str(ca)),
                       port=server.server_address[1], timeout=2.0)
    server.shutdown()
    server.server_close()


def publish(lab: DnsLab, domain: str, policy: str, *, txt_id: str | None = None,
            status: int = 200, ctype: str = "text/plain", tlsrpt: str | None = None) -> None:
    POLICIES[f"mta-sts.{domain}"] = (status, ctype, policy)
    tls = tlsrpt if tlsrpt is not None else f'_smtp._tls TXT "v=TLSRPTv1; rua=mailto:tls@{domain}"'
    lab.publish(domain, migadu_zone(domain, extra=(
        f'mta-sts A 127.0.0.1\n_mta-sts TXT "v=STSv1; id={txt_id or policy_id(policy)}"\n{tls}')))


MIGADU_MX = ["aspmx1.migadu.com", "aspmx2.migadu.com"]


def test_enforced_policy_covering_mx_is_clean(world: DnsLab, https: HttpsOptions) -> None:
    publish(world, "sts.test", render_policy("enforce", MIGADU_MX, 604800))
    report = check(world, migadu_spec("sts.test", mta_sts_mode="enforce"), https)
    assert report.status is Status.OK, [f.to_dict() for f in report.findings]


def test_policy_not_covering_mx_and_stale_id(world: DnsLab, https: HttpsOptions) -> None:
    old = render_policy("enforce", MIGADU_MX, 604800)
    publish(world, "sts.test", render_policy("enforce", ["mx.oldrelay.test"], 604800),
            txt_id=policy_id(old))
    report = check(world, migadu_spec("sts.test", mta_sts_mode="enforce"), https)
    uncovered = finding(report, "mta_sts.mx_uncovered")
    assert uncovered.severity is Severity.ERROR
    assert uncovered.found == "aspmx1.migadu.com, aspmx2.migadu.com"
    assert finding(report, "mta_sts.id_stale").expected != f"id={policy_id(old)}"


def test_mode_none_short_max_age_and_wrong_content_type(world: DnsLab, https: HttpsOptions) -> None:
    publish(world, "sts.test", render_policy("testing", MIGADU_MX, 3600), ctype="text/html")
    report = check(world, migadu_spec("sts.test", mta_sts_mode="enforce"), https)
    assert {"mta_sts.max_age_short", "mta_sts.content_type", "mta_sts.mode_mismatch",
            "mta_sts.mode_testing"} <= codes(report)
    publish(world, "sts.test", render_policy("none", [], 86400))
    assert "mta_sts.mode_none" in codes(check(world, migadu_spec("sts.test"), https))


def test_redirect_and_bad_certificate(world: DnsLab, https: HttpsOptions) -> None:
    publish(world, "sts.test", "", status=301)
    assert "mta_sts.redirect" in codes(check(world, migadu_spec("sts.test"), https))
    publish(world, "nocert.test", render_policy("enforce", MIGADU_MX, 604800))
    f = finding(check(world, migadu_spec("nocert.test"), https), "mta_sts.fetch_failed")
    assert "certificate" in f.message.lower() or "hostname" in f.message.lower()


def test_policy_syntax_and_missing_record(world: DnsLab, https: HttpsOptions) -> None:
    publish(world, "stsbad.test", "version: STSv1\nmode: strict\nmax_age: soon\n")
    errors = [f.message for f in check(world, migadu_spec("stsbad.test"), https).findings
              if f.code == "mta_sts.policy_syntax"]
    assert any("strict" in e for e in errors) and any("soon" in e for e in errors)
    world.publish("stsbad.test", migadu_zone("stsbad.test"))
    report = check(world, migadu_spec("stsbad.test", mta_sts_mode="enforce"), https)
    assert finding(report, "mta_sts.missing").severity is Severity.ERROR
    assert finding(report, "tls_rpt.missing").severity is Severity.WARNING


def test_tls_rpt_syntax_and_multiple(world: DnsLab, https: HttpsOptions) -> None:
    policy = render_policy("enforce", MIGADU_MX, 604800)
    publish(world, "sts.test", policy, tlsrpt='_smtp._tls TXT "v=TLSRPTv1; rua=tls@sts.test"')
    assert "tls_rpt.syntax" in codes(check(world, migadu_spec("sts.test"), https))
    publish(world, "sts.test", policy, tlsrpt='_smtp._tls TXT "v=TLSRPTv1; rua=mailto:a@sts.test"\n'
            '_smtp._tls TXT "v=TLSRPTv1; rua=mailto:b@sts.test"')
    assert "tls_rpt.multiple" in codes(check(world, migadu_spec("sts.test"), https))


def test_generated_policy_round_trips_and_id_tracks_content() -> None:
    policy = render_policy("enforce", ["mx1.example.org", "*.mx.example.org"], 86400)
    parsed = parse_policy(policy)
    assert parsed.errors == [] and parsed.mx == ["mx1.example.org", "*.mx.example.org"]
    assert policy_id(policy) == policy_id(policy.replace("\r\n", "\n"))
    assert policy_id(policy) != policy_id(render_policy("testing", parsed.mx, 86400))
    assert len(policy_id(policy)) <= 32 and policy_id(policy).isalnum()
