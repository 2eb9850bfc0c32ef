"""Preparing and starting the sandbox's Dovecot and Postfix.

Split from stack.py so that file keeps the lifecycle (up/down/reload) and
this one the mechanics. The gotchas referred to are numbered as in
/work/shared/notes/mailstack.md, section 2.
"""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mailctl.sandbox.render import write_atomic
from mailctl.sandbox.state import OAuth2Passdb, SandboxError, SandboxInfo

START_TIMEOUT = 20.0
SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


@dataclass(frozen=True, slots=True)
class Layout:
    """Every path of a sandbox, derived from its state dir."""

    root: Path

    def p(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @property
    def run(self) -> Path:  # Dovecot base_dir: sockets, master.pid
        return self.p("run")

    @property
    def maps(self) -> Path:
        return self.p("maps")

    @property
    def logs(self) -> Path:
        return self.p("log")

    @property
    def dovecot_conf(self) -> Path:
        return self.p("dovecot.conf")

    @property
    def postfix_etc(self) -> Path:
        return self.p("postfix", "etc")

    @property
    def postfix_pidfile(self) -> Path:
        return self.p("postfix", "spool", "pid", "master.pid")

    @property
    def cert(self) -> Path:
        return self.p("tls", "cert.pem")

    @property
    def key(self) -> Path:
        return self.p("tls", "key.pem")


@dataclass(frozen=True, slots=True)
class Ids:
    """Who the daemons run as; all the invoking user when unprivileged."""

    mail_uid: int
    mail_gid: int
    internal_user: str
    internal_group: str
    login_user: str
    users_gid: int  # group that may read the passwd-file (-1: owner only)
    postfix_uid: int
    postfix_gid: int

    @classmethod
    def resolve(cls, with_postfix: bool) -> Ids:
        if os.geteuid() != 0:
            me = pwd.getpwuid(os.geteuid()).pw_name
            group = grp.getgrgid(os.getegid()).gr_name
            return cls(os.geteuid(), os.getegid(), me, group, me, -1, -1, -1)
        try:
            nobody = pwd.getpwnam("nobody")
            dovecot = grp.getgrnam("dovecot").gr_gid
            pwd.getpwnam("dovenull")
            postfix = pwd.getpwnam("postfix") if with_postfix else None
        except KeyError as exc:
            raise SandboxError(
                f"system user/group {exc} is missing; reinstall dovecot-core/postfix") from None
        return cls(nobody.pw_uid, nobody.pw_gid, "dovecot", "dovecot", "dovenull", dovecot,
                   postfix.pw_uid if postfix else -1, postfix.pw_gid if postfix else -1)


def env() -> dict[str, str]:
    return {**os.environ, "PATH": SBIN_PATH}


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """For short-lived helpers only, never a daemon (gotcha 4)."""
    return subprocess.run(args, capture_output=True, text=True, env=env(),
                          stdin=subprocess.DEVNULL, timeout=60, check=False)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def ensure_cert(lay: Layout, host: str) -> Path:
    """Self-signed EC P-256 (~10 ms, vs up to 0.6 s for RSA); kept across restarts
    so a CA file someone already trusts stays valid."""
    cert, key = lay.cert, lay.key
    if cert.exists() and key.exists():
        check = run(["openssl", "x509", "-checkend", "86400", "-noout", "-in", str(cert)])
        if check.returncode == 0:
            return cert
    san = "DNS:localhost,IP:127.0.0.1" + ("" if host == "127.0.0.1" else f",IP:{host}")
    proc = run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                "ec_paramgen_curve:prime256v1", "-nodes", "-days", "365",
                "-subj", "/CN=mailctl sandbox", "-addext", f"subjectAltName={san}",
                "-keyout", str(key), "-out", str(cert)])
    if proc.returncode != 0:
        raise SandboxError(f"openssl could not make the sandbox certificate:\n{proc.stderr}")
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert


def prepare_dirs(lay: Layout, ids: Ids, with_postfix: bool) -> None:
    """Daemons that dropped root must traverse the state dir: 0755 where needed."""
    for d in ("tls", "maps", "log", "dovecot-state"):
        lay.p(d).mkdir(exist_ok=True)
        os.chmod(lay.p(d), 0o755)
    mail = lay.p("mail")
    mail.mkdir(exist_ok=True)
    os.chown(mail, ids.mail_uid, ids.mail_gid)
    os.chmod(mail, 0o700)
    if with_postfix:
        for d in ("postfix", "postfix/etc", "postfix/spool", "postfix/data"):
            lay.p(d).mkdir(exist_ok=True)
            os.chmod(lay.p(d), 0o755)
        os.chown(lay.p("postfix", "spool"), 0, 0)
        os.chown(lay.p("postfix", "data"), ids.postfix_uid, ids.postfix_gid)
        os.chmod(lay.p("postfix", "data"), 0o700)


def template(name: str, values: dict[str, str]) -> str:
    text = resources.files("mailctl.sandbox").joinpath("templates", name).read_text()

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise KeyError(f"{name}: no value for @{m.group(1)}@")
        return values[m.group(1)]

    return re.sub(r"@([A-Z_]+)@", sub, text)


def _oauth2(lay: Layout, ids: Ids, oauth2: OAuth2Passdb | None) -> tuple[str, str]:
    """(extra mechanisms, passdb block) for OAuth2 tokens: the introspection settings as
    verified in ../shared/notes/oidc-console.md (POST, HTTP Basic client auth in the URL's
    userinfo, the login name from `username_attribute`)."""
    ext = lay.p("dovecot-oauth2.conf.ext")
    if oauth2 is None:
        ext.unlink(missing_ok=True)
        return "", ""
    from urllib.parse import quote

    scheme, sep, rest = oauth2.introspection_url.partition("://")
    if not sep or scheme not in ("http", "https") or "@" in rest.split("/", 1)[0]:
        raise SandboxError(f"OAuth2 introspection URL {oauth2.introspection_url!r}: expected "
                           "http(s)://host[:port]/path without credentials")
    creds = f"{quote(oauth2.client_id, safe='')}:{quote(oauth2.client_secret.reveal(), safe='')}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", oauth2.username_attribute):
        raise SandboxError(f"username_attribute {oauth2.username_attribute!r}: expected a "
                           "field name")
    text = (f"introspection_mode = post\nintrospection_url = {scheme}://{creds}@{rest}\n"
            f"username_attribute = {oauth2.username_attribute}\n"
            "active_attribute = active\nactive_value = true\n")
    write_atomic(ext, text, mode=0o640 if ids.users_gid != -1 else 0o600, gid=ids.users_gid)
    block = ("# XOAUTH2 / OAUTHBEARER: tokens checked by the OpenID provider's introspection\n"
             f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n"
             f"  args = {ext}\n}}\n")
    return " xoauth2 oauthbearer", block


def write_configs(lay: Layout, info: SandboxInfo, ids: Ids,
                  oauth2: OAuth2Passdb | None = None) -> None:
    root = os.geteuid() == 0
    mechanisms, oauth2_passdb = _oauth2(lay, ids, oauth2)
    values = {
        "INSTANCE": "mailctl-sandbox-" + hashlib.sha256(bytes(lay.root)).hexdigest()[:10],
        "RUN_DIR": str(lay.run), "DOVECOT_STATE_DIR": str(lay.p("dovecot-state")),
        "HOST": info.host, "LOG_DIR": str(lay.logs), "MAPS_DIR": str(lay.maps),
        "USERS_FILE": str(lay.maps / "dovecot-users"), "MAIL_DIR": str(lay.p("mail")),
        "MASTERS_FILE": str(lay.maps / "dovecot-masters"),
        "OAUTH_MECHANISMS": mechanisms, "OAUTH_PASSDB": oauth2_passdb,
        "LOCAL_CONF": str(lay.maps / "dovecot-local.conf"),
        "MAIL_UID": str(ids.mail_uid), "MAIL_GID": str(ids.mail_gid),
        "INTERNAL_USER": ids.internal_user, "INTERNAL_GROUP": ids.internal_group,
        "LOGIN_USER": ids.login_user, "CHROOT_OFF": "" if root else "chroot =",
        "POSTFIX_SOCKET_USER": "user = postfix" if info.postfix else "",
        "TLS_CERT": str(lay.cert), "TLS_KEY": str(lay.key),
        "POSTFIX_QUEUE_DIR": str(lay.p("postfix", "spool")),
        "POSTFIX_DATA_DIR": str(lay.p("postfix", "data")),
        "SMTP_PORT": str(info.ports.smtp), "SUBMISSION_PORT": str(info.ports.submission),
        "IMAP_PORT": str(info.ports.imap), "IMAPS_PORT": str(info.ports.imaps),
        "LMTP_PORT": str(info.ports.lmtp),
    }
    write_atomic(lay.dovecot_conf, template("dovecot.conf.in", values))
    if info.postfix:
        # Backdated: a fresh main.cf makes every Postfix program wait ~2 s (gotcha 3).
        backdated = time.time() - 60
        for name in ("main.cf", "master.cf"):
            path = lay.postfix_etc / name
            write_atomic(path, template(f"{name}.in", values), mtime=backdated)
            os.utime(path, (backdated, backdated))


def spawn_postfix(lay: Layout) -> subprocess.Popen[bytes]:
    """Runs while Dovecot starts; `postfix start` spends ~0.3 s on its own checks."""
    with open(lay.logs / "postfix-start.log", "ab") as out:
        return subprocess.Popen(["postfix", "-c", str(lay.postfix_etc), "start"],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env())


def finish_postfix(lay: Layout, info: SandboxInfo, proc: subprocess.Popen[bytes]) -> None:
    if proc.wait(timeout=START_TIMEOUT) != 0:
        # postfix(1) says why only when stderr is a terminal (gotcha 1): ask under script(1).
        check = run(["script", "-qec", f"postfix -c {lay.postfix_etc} check", "/dev/null"])
        detail = (check.stdout + check.stderr).strip() or tail(lay.logs / "postfix.log")
        raise SandboxError(f"Postfix did not start:\n{detail}\n(logs in {lay.logs})")
    for port in (info.ports.smtp, info.ports.submission):
        wait_greeting(info.host, port, b"220 ", "Postfix", lay.logs)


def start_dovecot(lay: Layout, info: SandboxInfo) -> None:
    errlog = lay.logs / "dovecot-start.log"
    # A file, never a pipe: the master keeps the inherited stderr open (gotcha 4).
    with open(errlog, "ab") as out:
        rc = subprocess.call(["dovecot", "-c", str(lay.dovecot_conf)],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                             env=env(), timeout=START_TIMEOUT)
    if rc != 0:
        detail = tail(errlog) or tail(lay.logs / "dovecot.log")
        raise SandboxError(f"Dovecot did not start:\n{detail}\n(logs in {lay.logs})")
    # The greeting, not the accept: before it, auth may not be ready (gotcha 6).
    wait_greeting(info.host, info.ports.imap, b"* OK", "Dovecot", lay.logs)


def port_free(host: str, port: int) -> str | None:
    """None if the daemons could bind `port` (they set SO_REUSEADDR too), else why not."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def wait_greeting(host: str, port: int, prefix: bytes, who: str, logs: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                if s.recv(512).startswith(prefix):
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SandboxError(f"{who} did not greet on {host}:{port} within "
                               f"{START_TIMEOUT:.0f}s (logs in {logs})")
        time.sleep(0.02)
