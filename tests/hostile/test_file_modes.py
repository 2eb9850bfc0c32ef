"""Every file and folder mailctl creates, and who may read it.

The commands run the way a user runs them, under umask 000 (the worst a user's
shell can have), with HOME, XDG_STATE_HOME and XDG_CACHE_HOME inside the test
folder so that nothing mailctl writes escapes the walk. Afterwards every path
that did not exist before is checked: state and secrets 0600, folders mailctl
owns 0700. The few files meant to be shared (a starter config, a JSON Schema,
docker-mailserver's config files that the mail server's own users must read)
are listed with the reason they are allowed to be readable.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# Path patterns (relative, fnmatch) allowed to be readable by others, and why.
SHARED = {
    "site/mailctl.yaml": "the config holds references, never secrets; written by the test",
    "site/mailctl.schema.json": "a JSON Schema for editors",
    "site/starter/mailctl.yaml": "`init` writes a starter config: references only",
    "site/starter/mailctl.schema.json": "`init` writes a JSON Schema for editors",
    "site/dms": "docker-mailserver's config folder, read by the mail server's users",
    "site/dms/postfix-virtual.cf": "aliases: read by Postfix",
    "site/dms/dovecot-quotas.cf": "quotas: read by Dovecot",
    "site/zone.txt": "DNS records to publish, public by nature (stdout redirected by the test)",
}
# docker-mailserver's own setup writes postfix-accounts.cf 0644 in a folder only root
# can reach inside the container; mailctl writes it 0600 (hashes are secrets at rest).


def _run(args: list[str], cwd: Path, home: Path, stdout: Path | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    env.update(NO_COLOR="1", HOME=str(home), XDG_STATE_HOME=str(home / ".local/state"),
               XDG_CACHE_HOME=str(home / ".cache"))
    out = open(stdout, "w") if stdout else subprocess.PIPE  # noqa: SIM115
    try:
        proc = subprocess.run([sys.executable, "-m", "mailctl", *args], cwd=cwd, env=env,
                              input="", stdout=out, stderr=subprocess.PIPE, text=True,
                              timeout=120, preexec_fn=lambda: os.umask(0))
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
    assert proc.returncode == 0, f"mailctl {' '.join(args)}: {proc.stderr}"


def _walk(root: Path) -> dict[str, int]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = p.lstat().st_mode
    return out


def test_every_file_mailctl_creates_is_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    site = tmp_path / "site"
    for d in (home, site, site / "dms", site / "src" / "cur", site / "src" / "new",
              site / "src" / "tmp"):
        d.mkdir(parents=True, exist_ok=True)
    (site / "src" / "cur" / "1.host:2,S").write_bytes(b"Subject: hi\r\n\r\nbody\r\n")
    (site / "mailctl.yaml").write_text(
        "providers:\n  local:\n    type: dms\n    path: ./dms\n"
        "domains:\n  example.org:\n    provider: local\n"
        "    mailboxes:\n      - local_part: alice\n      - local_part: bob\n")
    before = set(_walk(tmp_path))

    _run(["validate"], site, home)  # the parse cache
    _run(["apply", "--secrets-out", "secrets.tsv"], site, home)
    _run(["tokens", "add", "party", "--png", "party.png", "--svg", "party.svg"], site, home)
    _run(["accounts", "add", "guest@example.org", "--png", "guest.png",
          "--secrets-out", "guest.tsv"], site, home)
    _run(["dkim", "generate", "example.org", "--selector", "s1"], site, home)
    _run(["dns", "records", "example.org", "--format", "zone"], site, home, site / "zone.txt")
    _run(["sync", "maildir:src", "maildir:copy"], site, home)
    _run(["sync", "maildir:src", "maildir:copy2", "--state", "state.db"], site, home)
    (site / "starter").mkdir()
    _run(["init", "-f", "starter/mailctl.yaml"], site, home)
    os.chmod(site / "starter", 0o700)  # made by the test, not by mailctl

    created = {k: v for k, v in _walk(tmp_path).items() if k not in before}
    assert any("party.png" in k for k in created) and any(".cache" in k for k in created)
    wrong = []
    for rel, mode in sorted(created.items()):
        if rel in SHARED or stat.S_ISLNK(mode):
            continue
        perm = stat.S_IMODE(mode)
        if stat.S_ISDIR(mode):
            if perm & 0o077:
                wrong.append(f"{rel}/ {perm:o} (expected 700)")
        elif perm & 0o077:
            wrong.append(f"{rel} {perm:o} (expected 600)")
    assert not wrong, "files others can read:\n" + "\n".join(wrong)


@pytest.mark.parametrize("rel", sorted(SHARED))
def test_shared_paths_hold_no_secret_fields(rel: str) -> None:
    """The allow-list stays an allow-list of public things."""
    assert not any(w in rel for w in ("secret", "key", "pw", "token", ".db"))
