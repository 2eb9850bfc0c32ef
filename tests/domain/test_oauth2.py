"""XOAUTH2 and OAUTHBEARER against a Dovecot that checks tokens with a local OpenID
provider by introspection (../shared/notes/oidc-console.md), tokens from the refresh
token grant, and a refresh during a long copy whose session the server drops."""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from mailctl.sandbox import OAuth2Passdb
from mailctl.secret import Secret
from tests.domain.conftest import content, fill_user
from tests.fixtures.cli import run_cli, write_config
from tests.fixtures.mailstack import MailStack, unique_domain
from tests.fixtures.oidc import OidcProvider
from tests.sync.helpers import fill, message


def _oauth_site(op: OidcProvider, factory: Any, tmp_path: Path, ttl: int,
                mechanism: str, users: tuple[str, ...] = ("alice", "bob")
                ) -> tuple[MailStack, str, dict[str, str], tuple[str, str]]:
    client = op.register_mail_client(access_token_ttl=ttl)
    stack: MailStack = factory(oauth2=OAuth2Passdb(f"{op.issuer}/token/introspection",
                                                   client[0], Secret(client[1])))
    dom = unique_domain("oa")
    # the mailboxes exist with passwords mailctl is never given
    stack.set(accounts={f"{u}@{dom}": f"own-{u}-password-{dom}" for u in users})
    tokens = {}
    for u in users:
        login = f"{u}-{dom}"
        op.add_user(login, f"op-{u}-pw", email=f"{u}@{dom}", email_verified=True)
        tokens[f"{u}@{dom}"] = op.user_tokens(client, login, f"op-{u}-pw")["refresh_token"]
    (tmp_path / "tokens.tsv").write_text("".join(f"{a}\t{t}\n" for a, t in tokens.items()))
    (tmp_path / "tokens.tsv").chmod(0o600)
    (tmp_path / "client.secret").write_text(client[1] + "\n")
    write_config(tmp_path, f"""
providers:
  mail: {{type: dms, path: {stack.dms_dir}}}
mail_access:
  mail:
    imap: imap://{stack.info.host}:{stack.info.ports.imap}
    auth: oauth2
    oauth2:
      token_url: {op.issuer}/token
      client_id: {client[0]}
      client_secret: "${{file:client.secret}}"
      refresh_tokens: tokens.tsv
      mechanism: {mechanism}
domains:
  {dom}:
    provider: mail
    mailboxes:
""" + "".join(f"      - local_part: {u}\n" for u in users))
    return stack, dom, tokens, client


@pytest.mark.parametrize("mechanism", ["xoauth2", "oauthbearer"])
def test_backup_signs_in_with_bearer_tokens(oidc_provider: OidcProvider,
                                            mailstack_factory: Any, tmp_path: Path,
                                            mechanism: str) -> None:
    stack, dom, tokens, _ = _oauth_site(oidc_provider, mailstack_factory, tmp_path, 600,
                                        mechanism)
    fill_user(stack, f"alice@{dom}", f"own-alice-password-{dom}", 25, seed=1)
    r = run_cli("domain", "backup", dom, "b", "--json", cwd=tmp_path)
    assert r.code == 0, r.all
    got = {m["address"]: m for m in json.loads(r.out)["mailboxes"]}
    assert got[f"alice@{dom}"]["copied"] == 25 and got[f"bob@{dom}"]["ok"]
    for t in tokens.values():
        assert t not in r.all  # refresh tokens never printed
    # a token for one user does not open another's mailbox: bob's token as alice fails
    tokens_file = tmp_path / "tokens.tsv"
    tokens_file.write_text(f"alice@{dom}\t{tokens[f'bob@{dom}']}\n"
                           f"bob@{dom}\t{tokens[f'bob@{dom}']}\n")
    r = run_cli("domain", "backup", dom, "b2", cwd=tmp_path)
    assert r.code == 3 and f"alice@{dom}" in r.err, r.all
    assert not (tmp_path / "b2").exists()


def test_a_token_refresh_during_a_long_copy(oidc_provider: OidcProvider,
                                            mailstack_factory: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Access tokens live 1 s. The server drops the session half-way (as Exchange Online
    does when a token expires: `BYE AccessTokenExpired`; here `doveadm kick`): the copy
    signs in again with a refreshed token and finishes, every message once."""
    from mailctl.config.load import load_config
    from mailctl.domain.access import access_for
    from mailctl.domain.backup import backup_domain
    from mailctl.domain.mailsync import Progress

    stack, dom, _, _ = _oauth_site(oidc_provider, mailstack_factory, tmp_path, 1, "xoauth2",
                                   users=("alice",))
    alice = f"alice@{dom}"
    # many folders: each is opened (SELECT) on the session after the one before it
    rng = random.Random(4)
    fill(stack.info, alice, f"own-alice-password-{dom}",
         {f"F{i:02d}": [(message(i * 1000 + j, rng=rng), "(\\Seen)", 1_600_000_000 + j)
                        for j in range(120)] for i in range(20)})
    monkeypatch.setenv("MAILCTL_SYNC_BATCH", "25")  # many commits along the way
    # one folder at a time: a second folder worker would read every other folder while
    # this one waits for the token to expire, leaving nothing for the kicked session
    monkeypatch.setenv("MAILCTL_SYNC_JOBS", "1")
    config = load_config(tmp_path / "mailctl.yaml")
    access = access_for(config, "mail")
    progress = Progress()
    kicked: list[subprocess.CompletedProcess[str]] = []

    def half_way(p: Progress) -> None:
        """Once, with 300 messages copied: wait until the token has expired, then have
        the server drop the session (the copy's own thread waits meanwhile)."""
        if p.done >= 300 and not kicked:
            kicked.append(subprocess.CompletedProcess([], 0))
            time.sleep(1.5)
            kicked[0] = subprocess.run(
                ["doveadm", "-c", str(stack.info.state_dir / "dovecot.conf"), "kick", alice],
                capture_output=True, text=True)

    progress.listeners.append(half_way)
    out: dict[str, Any] = {}
    t = threading.Thread(target=lambda: out.setdefault(
        "r", backup_domain(config, dom, tmp_path / "b", access, jobs=1, progress=progress)))
    t.start()
    t.join(120)
    assert kicked and alice in kicked[0].stdout, kicked
    result = out["r"]
    box = result.mailboxes[alice]
    assert box.ok, box.error
    assert box.reconnects >= 1
    assert access.auth.tokens.issued >= 2  # the expired token was refreshed
    assert content(stack, alice, f"own-alice-password-{dom}") == _backup_content(tmp_path)


def _backup_content(tmp_path: Path) -> dict[str, list[tuple[bytes, str, int]]]:
    from mailctl.sync.maildir import MaildirStore
    from mailctl.sync.model import imap_date_to_epoch

    root = next((tmp_path / "b" / "mail").iterdir())
    store = MaildirStore(str(root))
    out = {}
    for folder in store.folders():
        scan = store.scan(folder)
        msgs = sorted((m.body, m.flags, int(imap_date_to_epoch(m.date)))
                      for m in store.fetch(folder, sorted(scan.keys), {}))
        if msgs:
            out[folder.replace("/", ".")] = msgs
    return out
