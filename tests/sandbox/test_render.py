"""dms files -> daemon maps, without daemons."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mailctl.sandbox.render import (
    DOVECOT_USERS,
    POSTFIX_DOMAINS,
    POSTFIX_MAILBOXES,
    POSTFIX_VIRTUAL,
    RenderError,
    render,
)

H = "{SHA512-CRYPT}$6$rounds=1000$salt$hash"


def _dms(tmp_path: Path, accounts: str = "", virtual: str = "", quotas: str = "") -> Path:
    d = tmp_path / "dms"
    d.mkdir(exist_ok=True)
    for name, text in (("postfix-accounts.cf", accounts), ("postfix-virtual.cf", virtual),
                       ("dovecot-quotas.cf", quotas)):
        if text:
            (d / name).write_bytes(text.encode())
    return d


def _read(maps: Path, name: str) -> str:
    return (maps / name).read_text()


def test_missing_files_render_empty_maps(tmp_path: Path) -> None:
    maps = tmp_path / "maps"
    result = render(_dms(tmp_path), maps)
    assert result.accounts == 0 and result.domains == ()
    for name in (DOVECOT_USERS, POSTFIX_DOMAINS, POSTFIX_MAILBOXES, POSTFIX_VIRTUAL):
        assert _read(maps, name) == ""


def test_accounts_quotas_and_extra_fields(tmp_path: Path) -> None:
    dms = _dms(
        tmp_path,
        accounts=f"# comment\r\n\r\nAlice@Example.TEST|{H}\r\nbob@other.test|{H}|userdb_foo=bar\n",
        quotas="alice@example.test:5G\nbob@other.test:0\n",
    )
    result = render(dms, tmp_path / "maps")
    users = _read(tmp_path / "maps", DOVECOT_USERS).splitlines()
    assert users == [
        f"alice@example.test:{H}::::::userdb_quota_rule=*:bytes=5G",
        f"bob@other.test:{H}::::::userdb_foo=bar",
    ]
    assert result.domains == ("example.test", "other.test")
    assert _read(tmp_path / "maps", POSTFIX_MAILBOXES) == (
        "alice@example.test example.test/alice/\nbob@other.test other.test/bob/\n")


def test_virtual_keys_targets_and_domains(tmp_path: Path) -> None:
    dms = _dms(tmp_path, accounts=f"a@x.test|{H}\n",
               virtual="team@y.test\ta@x.test, b@ext.example\n@z.test a@x.test\nlocal b@x.test\n")
    result = render(dms, tmp_path / "maps")
    assert _read(tmp_path / "maps", POSTFIX_VIRTUAL) == (
        "team@y.test a@x.test,b@ext.example\n@z.test a@x.test\nlocal b@x.test\n")
    # targets' domains are not served; alias and catch-all keys' domains are
    assert result.domains == ("x.test", "y.test", "z.test")
    assert _read(tmp_path / "maps", POSTFIX_DOMAINS) == "x.test OK\ny.test OK\nz.test OK\n"


def test_catch_all_is_rendered_as_dms_has_it_unless_asked(tmp_path: Path) -> None:
    dms = _dms(tmp_path, accounts=f"a@d.test|{H}\nb@d.test|{H}\n",
               virtual="a@d.test a@d.test,c@e.test\n@d.test box@d.test\n")
    render(dms, tmp_path / "plain")
    assert "b@d.test" not in _read(tmp_path / "plain", POSTFIX_VIRTUAL)
    render(dms, tmp_path / "implicit", implicit_self_aliases=True)
    lines = _read(tmp_path / "implicit", POSTFIX_VIRTUAL).splitlines()
    assert "b@d.test b@d.test" in lines
    assert "a@d.test a@d.test,c@e.test" in lines  # an existing entry is left alone


@pytest.mark.parametrize(
    ("accounts", "virtual", "quotas", "where"),
    [
        ("nodomain|" + H, "", "", "postfix-accounts.cf:1"),
        ("a@x.test\n", "", "", "postfix-accounts.cf:1"),
        (f"a@x.test|{H}", "lonely@x.test\n", "", "postfix-virtual.cf:1"),
        (f"a@x.test|{H}", "k@x.test a@x.test b@x.test\n", "", "postfix-virtual.cf:1"),
        (f"a@x.test|{H}", "", "#c\na@x.test:5GB\n", "dovecot-quotas.cf:2"),
    ],
)
def test_bad_lines_name_file_and_line(
    tmp_path: Path, accounts: str, virtual: str, quotas: str, where: str
) -> None:
    with pytest.raises(RenderError, match=where):
        render(_dms(tmp_path, accounts, virtual, quotas), tmp_path / "maps")


def test_duplicates_and_stray_quotas_are_warnings(tmp_path: Path) -> None:
    dms = _dms(tmp_path, accounts=f"a@x.test|{H}\nA@x.test|{H}x\n",
               virtual="k@x.test a@x.test\nk@x.test b@x.test\n", quotas="zz@x.test:1M\n")
    result = render(dms, tmp_path / "maps")
    assert len(result.warnings) == 3
    assert _read(tmp_path / "maps", DOVECOT_USERS).count("a@x.test") == 1
    assert _read(tmp_path / "maps", POSTFIX_VIRTUAL) == "k@x.test a@x.test\n"


def test_mtimes_suit_both_daemons(tmp_path: Path) -> None:
    dms = _dms(tmp_path, accounts=f"a@x.test|{H}\n")
    maps = tmp_path / "maps"
    first = render(dms, maps)
    assert len(first.changed) == 10  # new files, even empty virtual/relay/master maps, local conf
    # Postfix: backdated, or every process waits for the file to "cool down"
    assert os.stat(maps / POSTFIX_MAILBOXES).st_mtime < time.time() - 30
    before = os.stat(maps / DOVECOT_USERS)
    # same size, same second: Dovecot must still see a different mtime
    (dms / "postfix-accounts.cf").write_text(f"a@x.test|{H[:-1]}X\n")
    second = render(dms, maps)
    after = os.stat(maps / DOVECOT_USERS)
    assert second.changed == (DOVECOT_USERS,)
    assert after.st_size == before.st_size and int(after.st_mtime) != int(before.st_mtime)
    assert render(dms, maps).changed == ()  # unchanged input: nothing rewritten
    assert second.digest != first.digest


def test_relay_files_become_sender_dependent_maps(tmp_path: Path) -> None:
    from mailctl.sandbox.render import (
        POSTFIX_RELAY_SASL,
        POSTFIX_RELAY_SENDERS,
        POSTFIX_RELAY_TRANSPORT,
        RenderError,
    )

    dms = _dms(tmp_path, accounts=f"a@x.test|{H}\n")
    (dms / "postfix-relaymap.cf").write_text("# comment\n@x.test [relay.test]:587\n@y.test\n")
    (dms / "postfix-sasl-password.cf").write_text("@x.test u:p4ss:word\n@z.test v:w\n")
    maps = tmp_path / "maps"
    render(dms, maps)
    assert _read(maps, POSTFIX_RELAY_TRANSPORT) == "@x.test smtp:[relay.test]:587\n"
    assert _read(maps, POSTFIX_RELAY_SENDERS) == "x.test mailctl_relay\n"  # access(5) key
    assert _read(maps, POSTFIX_RELAY_SASL) == "@x.test u:p4ss:word\n"
    assert os.stat(maps / POSTFIX_RELAY_SASL).st_mode & 0o777 == 0o600
    (dms / "postfix-sasl-password.cf").write_text("@x.test only-secret-no-colon\n")
    with pytest.raises(RenderError) as info:
        render(dms, maps)
    assert "only-secret" not in str(info.value)
