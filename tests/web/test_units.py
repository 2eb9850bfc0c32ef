"""The console's pure parts: YAML edits, identities from claims, hashes, limits, settings."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mailctl.web import errors as E
from mailctl.web.auth import claim_values, hash_password, resolve_identity, verify_password
from mailctl.web.security import RateLimiter
from mailctl.web.settings import AccessSettings
from mailctl.web.yamledit import EditError, add_mailbox, set_mailbox_field
from tests.fixtures.cli import run_cli, write_config

BASE = """\
# the team's mail
providers:
  p: {type: dms, path: ./dms}
domains:
  example.org:   # main domain
    provider: p
    mailboxes:
      - local_part: alice   # founder
        quota: 1G
      - {local_part: bob}
  other.org:
    provider: p
"""


def test_add_mailbox_keeps_comments_and_order() -> None:
    change = add_mailbox(BASE, "mailctl.yaml", "example.org", "carol", {"quota": "2G"})
    assert change.new.splitlines()[:5] == BASE.splitlines()[:5]
    assert "      - local_part: carol\n        quota: 2G\n" in change.new
    assert change.new.index("carol") > change.new.index("{local_part: bob}")
    assert change.new.index("carol") < change.new.index("other.org")
    assert change.diff.count("\n+ ") == 2 and "# founder" in change.new


def test_add_mailbox_to_a_domain_without_mailboxes() -> None:
    change = add_mailbox(BASE, "mailctl.yaml", "other.org", "x", {})
    assert change.new.endswith("    provider: p\n    mailboxes:\n      - local_part: x\n")


def test_add_mailbox_refuses_duplicates_and_flow_style() -> None:
    with pytest.raises(EditError, match="already declared"):
        add_mailbox(BASE, "mailctl.yaml", "example.org", "Alice", {})
    flow = BASE.replace("  other.org:\n    provider: p\n", "  other.org: {provider: p}\n")
    with pytest.raises(EditError, match="flow style"):
        add_mailbox(flow, "mailctl.yaml", "other.org", "x", {})


def test_set_quota_replaces_or_adds_the_field() -> None:
    change = set_mailbox_field(BASE, "mailctl.yaml", "example.org", "alice", "quota", "5G")
    assert "        quota: 5G\n" in change.new and "quota: 1G" not in change.new
    with pytest.raises(EditError, match="flow style"):
        set_mailbox_field(BASE, "mailctl.yaml", "example.org", "bob", "quota", "5G")
    with pytest.raises(EditError, match="not declared"):
        set_mailbox_field(BASE, "mailctl.yaml", "example.org", "zed", "quota", "5G")


def test_names_that_yaml_would_misread_are_quoted() -> None:
    change = add_mailbox(BASE, "mailctl.yaml", "example.org", "no", {"name": "a: b"})
    assert "- local_part: \"no\"" in change.new and 'name: "a: b"' in change.new


def _identity(claims: dict[str, object], access: AccessSettings | None = None):
    return resolve_identity({"sub": "s1", **claims},
                            access or AccessSettings(admin_roles=["admins"],
                                                     domain_admin_roles={"ex": ["example.org"]},
                                                     domains_claim="mail_domains"),
                            "groups", ["example.org", "other.org"],
                            lambda a: a == "alice@example.org", 3600, None)


def test_roles_from_lists_or_strings() -> None:
    assert claim_values(["a", "b"]) == ("a", "b")
    assert claim_values("a b,c") == ("a", "b", "c")
    assert claim_values(None) == ()
    assert _identity({"groups": "staff admins"}).admin


def test_domain_admins_only_get_declared_domains() -> None:
    who = _identity({"groups": ["ex"], "mail_domains": ["other.org", "evil.org"]})
    assert who.admin_domains == ("example.org", "other.org") and not who.admin
    assert who.can_admin("other.org") and not who.can_admin("evil.org")


def test_mailbox_needs_a_verified_email() -> None:
    who = _identity({"email": "Alice@Example.org", "email_verified": True})
    assert who.mailbox == "alice@example.org"
    with pytest.raises(E.Forbidden, match="not verified"):
        _identity({"email": "alice@example.org", "email_verified": False})
    with pytest.raises(E.Forbidden, match="no access"):
        _identity({"email": "zed@example.org", "email_verified": True})


def test_user_roles_restrict_who_may_sign_in() -> None:
    access = AccessSettings(user_roles=["mail-users"])
    claims: dict[str, object] = {"email": "alice@example.org", "email_verified": "true"}
    with pytest.raises(E.Forbidden):
        _identity(claims, access)
    assert _identity({**claims, "groups": ["mail-users"]}, access).mailbox


def test_break_glass_hash() -> None:
    h = hash_password("a long emergency password")
    assert h.startswith("scrypt$") and "a long" not in h
    assert verify_password("a long emergency password", h)
    assert not verify_password("a long emergency passwore", h)
    assert not verify_password("x", "garbage")


def test_rate_limiter_refills() -> None:
    lim = RateLimiter(per_minute=60, burst=2)
    assert lim.take("a", 0.0) == 0 and lim.take("a", 0.0) == 0
    assert lim.take("a", 0.0) == pytest.approx(1.0)
    assert lim.take("b", 0.0) == 0
    assert lim.take("a", 1.0) == 0


@pytest.mark.parametrize("console,message", [
    pytest.param("console: {oidc: {issuer: 'https://id.example.org', client_id: c, "
                 "client_secret: plain-text}}", "must be a secret reference",
                 id="literal-secret"),
    pytest.param("console: {}", "needs a way to sign in", id="no-login"),
    pytest.param("console: {break_glass: {enabled: true}}", "needs password_hash",
                 id="break-glass-without-hash"),
    pytest.param("console: {oidc: {issuer: 'ftp://id', client_id: c, "
                 "client_secret: '${env:X}'}}", "expected an http(s) URL", id="issuer"),
    pytest.param("console: {oidc: {issuer: 'https://id.example.org', client_id: c, "
                 "client_secret: '${env:X}', scopes: [email]}}", "must include openid",
                 id="no-openid"),
    pytest.param("console: {sesion: {}}", "unknown key 'sesion'", id="typo"),
])
def test_bad_console_settings_are_config_errors(tmp_path: Path, console: str,
                                                message: str) -> None:
    write_config(tmp_path, textwrap.dedent("""\
        providers: {p: {type: dms, path: ./dms}}
        domains: {example.org: {provider: p}}
        """) + console + "\n")
    r = run_cli("validate", cwd=tmp_path)
    assert r.code == 1
    assert "mailctl.yaml:3:" in r.err and message in r.err
    assert "Traceback" not in r.err


def test_one_read_per_provider_however_many_domains(tmp_path: Path, monkeypatch) -> None:
    """A provider's read covers all its domains: the dashboard's refresh read a
    10-domain dms folder ten times (the first read of 10 x 1,000 mailboxes took 5 s
    of CPU instead of 0.5 s, bench/console_bench.py)."""
    from mailctl.config.load import load_config
    from mailctl.providers.dms.provider import DmsProvider
    from mailctl.web.live import ConfigServices

    (tmp_path / "dms").mkdir()
    names = [f"d{i}.example" for i in range(4)]
    (tmp_path / "dms" / "postfix-accounts.cf").write_text(
        "".join(f"alice@{d}|{{SHA512-CRYPT}}$6$salt$hash\n" for d in names))
    write_config(tmp_path, "providers: {p: {type: dms, path: ./dms}, q: {type: dms, path: ./dms}}\n"
                 "domains:\n" + "".join(
                     f"  {d}: {{provider: {'q' if d == names[-1] else 'p'}, "
                     "mailboxes: [{local_part: alice}, {local_part: bob}]}\n" for d in names)
                 + "console: {oidc: {issuer: 'https://id.example.org', client_id: c, "
                 "client_secret: '${env:CONSOLE_SECRET}'}}\n")
    reads: list[tuple[str, ...]] = []
    real = DmsProvider.read

    def counted(self: DmsProvider, domains: list[str]) -> object:
        reads.append(tuple(domains))
        return real(self, domains)

    monkeypatch.setattr(DmsProvider, "read", counted)
    config = load_config(tmp_path / "mailctl.yaml")
    assert config.file.console is not None
    services = ConfigServices(config, config.file.console)
    for refresh in (True, False, True):
        summaries = services.overview(names, refresh)
        assert [(s.name, s.declared, s.present, s.to_create) for s in summaries] == [
            (d, 2, 1, 1) for d in names]
    assert sorted(reads) == sorted([tuple(names[:-1]), (names[-1],)] * 2)
