"""A real Dovecot + Postfix on 127.0.0.1 serving a dms config dir, without systemd.

Why real daemons: the point of the sandbox is to check that what the dms
provider writes is what a dms container would serve, and to give the sync
and probe code an IMAP/SMTP server that behaves like one. The layout under
the state dir is::

    sandbox.json  tls/  maps/  run/  dovecot-state/  mail/  log/
    postfix/{etc,spool,data}

The recipe and its gotchas (silent Postfix failures, the 2 s "cool down" of
fresh files, Dovecot holding inherited stderr, slow failed logins, zombies)
are in /work/shared/notes/mailstack.md, section 2.
"""

from __future__ import annotations

import contextlib
import fcntl
import grp
import hashlib
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from mailctl.sandbox import procs
from mailctl.sandbox.render import RenderError, render, write_atomic
from mailctl.sandbox.state import (
    DEFAULT_PORTS,
    STATE_FILE,
    Ports,
    SandboxError,
    SandboxInfo,
    SandboxStatus,
    load_info,
    marker_entries,
    save_info,
    set_marker,
)

log = logging.getLogger("mailctl.sandbox")

DEFAULT_HOST = "127.0.0.1"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
RELOAD_WAIT = 3.0
# sun_path holds 107 characters; Dovecot's longest socket name under
# base_dir ("token-login/tokenlogin", "login/imap-urlauth", ...) needs ~25.
_MAX_RUN_DIR = 78
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+@=-]+$")


class Sandbox:
    """One sandbox = one state dir. Methods lock the state dir against each other."""

    def __init__(
        self,
        state_dir: Path,
        dms_dir: Path,
        ports: Ports | None = None,
        with_postfix: bool | None = None,
        *,
        host: str = DEFAULT_HOST,
        implicit_self_aliases: bool = False,
    ) -> None:
        self.state_dir = Path(state_dir).absolute()
        self.dms_dir = Path(dms_dir).absolute()
        self.requested_ports = ports
        self.host = host
        self.implicit_self_aliases = implicit_self_aliases
        is_root = os.geteuid() == 0
        if with_postfix and not is_root:
            raise SandboxError("Postfix needs root (its master process starts as root)")
        self.with_postfix = is_root if with_postfix is None else with_postfix
        self.postfix_disabled_reason: str | None = None
        if not self.with_postfix:
            self.postfix_disabled_reason = (
                "disabled by the caller" if is_root else
                "not running as root: Postfix's master must start as root, so only "
                "Dovecot (IMAP, IMAPS, LMTP) runs"
            )

    @classmethod
    def from_state(cls, state_dir: Path) -> Sandbox | None:
        """The sandbox recorded in `state_dir`, for `status`/`down` from a later process."""
        info = load_info(Path(state_dir).absolute())
        if info is None:
            return None
        sb = cls(info.state_dir, info.dms_dir, info.ports, info.postfix,
                 host=info.host, implicit_self_aliases=info.implicit_self_aliases)
        sb.postfix_disabled_reason = info.postfix_disabled_reason
        return sb

    # -- paths -------------------------------------------------------------
    def _p(self, *parts: str) -> Path:
        return self.state_dir.joinpath(*parts)

    @property
    def dovecot_conf(self) -> Path:
        return self._p("dovecot.conf")

    @property
    def postfix_etc(self) -> Path:
        return self._p("postfix", "etc")

    # -- public API --------------------------------------------------------
    def up(self) -> SandboxInfo:
        """Start (or find running) and return the connection details; idempotent."""
        self._preflight()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o755)
        with self._locked():
            info = load_info(self.state_dir)
            if info is not None:
                running = self._running(info)
                if running and all(running.values()):
                    self._check_same(info)
                    self._reload_locked(info, force=False)
                    return info
                if any(running.values()):
                    self._stop_locked(info)  # half a stack: start over cleanly
            return self._start_locked(info)

    def down(self, purge: bool = False) -> None:
        """Stop this sandbox's daemons; keep mail and logs unless `purge`."""
        if not self.state_dir.is_dir():
            return
        with self._locked():
            info = load_info(self.state_dir)
            if info is not None:
                self._stop_locked(info)
                set_marker(info.dms_dir, self.state_dir, present=False)
                info.dovecot_pid = info.postfix_pid = None
                save_info(info)
        if purge and (self._p(STATE_FILE).exists() or not any(self.state_dir.iterdir())):
            shutil.rmtree(self.state_dir)

    def status(self) -> SandboxStatus:
        info = load_info(self.state_dir) if self.state_dir.is_dir() else None
        if info is None:
            wanted = {"dovecot": False} | ({"postfix": False} if self.with_postfix else {})
            return SandboxStatus(self.state_dir, None, None, None, None, self.with_postfix,
                                 self.postfix_disabled_reason, wanted,
                                 dict.fromkeys(wanted, None))
        running = self._running(info)
        pids = {"dovecot": self._dovecot_pid(info) if running["dovecot"] else None}
        if info.postfix:
            pids["postfix"] = self._postfix_pid(info) if running["postfix"] else None
        return SandboxStatus(info.state_dir, info.dms_dir, info.host, info.ports, info.ca_file,
                             info.postfix, info.postfix_disabled_reason, running, pids)

    def reload(self) -> None:
        """Re-render the maps from the dms files and make both daemons use them now."""
        with self._locked():
            info = load_info(self.state_dir)
            if info is None or not all(self._running(info).values()):
                raise SandboxError(f"no running sandbox in {self.state_dir}; run `up` first")
            self._reload_locked(info, force=True)

    def notify(self) -> bool:
        """Reload if running and the dms files changed; True if a live sandbox is in sync."""
        if not self._p(STATE_FILE).exists():
            return False
        with self._locked():
            info = load_info(self.state_dir)
            if info is None or info.dms_dir != self.dms_dir:
                return False
            if not all(self._running(info).values()):
                return False
            self._reload_locked(info, force=False)
            return True

    # -- start -------------------------------------------------------------
    def _preflight(self) -> None:
        for path in (self.state_dir, self.dms_dir):
            if not _SAFE_PATH.match(str(path)):
                raise SandboxError(
                    f"{path}: use a path of letters, digits and ._-+@= only "
                    "(it ends up unquoted in Postfix and Dovecot configs)")
        if len(str(self._p("run"))) > _MAX_RUN_DIR:
            raise SandboxError(
                f"state dir {self.state_dir} is too long for Unix socket paths "
                f"(keep it under {_MAX_RUN_DIR - 4} characters)")
        if not self.dms_dir.is_dir():
            raise SandboxError(f"dms config dir {self.dms_dir} does not exist")
        need = ["dovecot", "openssl"] + (["postfix"] if self.with_postfix else [])
        missing = [b for b in need if not shutil.which(b, path=_SBIN_PATH)]
        if missing:
            raise SandboxError(
                f"missing {', '.join(missing)}; on Debian: apt-get install "
                "dovecot-imapd dovecot-lmtpd postfix openssl")
        if os.geteuid() == 0:
            self._check_traversable()

    def _check_traversable(self) -> None:
        """Dovecot and Postfix drop root, so every parent must be searchable by others."""
        for parent in [*reversed(self.state_dir.parents)]:
            if parent.exists() and not parent.stat().st_mode & 0o001:
                raise SandboxError(
                    f"{parent} is not searchable by other users (mode "
                    f"{parent.stat().st_mode & 0o777:o}), so the dovecot/postfix users cannot "
                    f"reach {self.state_dir}; pick a state dir under /tmp or /var/tmp")

    def _check_same(self, info: SandboxInfo) -> None:
        if info.dms_dir != self.dms_dir:
            raise SandboxError(f"{self.state_dir} already serves {info.dms_dir}; `down` first")
        if self.requested_ports is not None and self.requested_ports != info.ports:
            raise SandboxError(f"already running on ports {info.ports}; `down` first")

    def _check_ports(self, ports: Ports) -> None:
        values = [p for _, p in ports.items()]
        if len(set(values)) != len(values):
            raise SandboxError(f"ports must differ: {ports}")
        for name, port in ports.items():
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((self.host, port))
                except OSError as exc:
                    raise SandboxError(
                        f"{name} port {self.host}:{port} is not available ({exc.strerror}); "
                        "choose other ports") from None

    def _start_locked(self, old: SandboxInfo | None) -> SandboxInfo:
        ports = self.requested_ports or (old.ports if old else DEFAULT_PORTS)
        self._check_ports(ports)
        ids = _Ids.resolve(self.with_postfix)
        for d in ("tls", "maps", "log", "dovecot-state", "postfix"):
            self._p(d).mkdir(exist_ok=True)
            os.chmod(self._p(d), 0o755)
        mail = self._p("mail")
        mail.mkdir(exist_ok=True)
        os.chown(mail, ids.mail_uid, ids.mail_gid)
        os.chmod(mail, 0o700)
        ca_file = self._ensure_cert()
        try:
            result = render(self.dms_dir, self._p("maps"),
                            implicit_self_aliases=self.implicit_self_aliases,
                            users_gid=ids.users_gid)
        except RenderError as exc:
            raise SandboxError(str(exc)) from None
        for warning in result.warnings:
            log.warning("%s", warning)
        info = SandboxInfo(
            state_dir=self.state_dir, dms_dir=self.dms_dir, host=self.host, ports=ports,
            ca_file=ca_file, lmtp_socket=self._p("run", "lmtp"), log_dir=self._p("log"),
            postfix=self.with_postfix, postfix_disabled_reason=self.postfix_disabled_reason,
            implicit_self_aliases=self.implicit_self_aliases, digest=result.digest)
        self._write_configs(info, ids)
        postfix_start: subprocess.Popen[bytes] | None = None
        try:
            if self.with_postfix:
                postfix_start = self._spawn_postfix()
            self._start_dovecot(info)
            if postfix_start is not None:
                self._finish_postfix(info, postfix_start)
        except BaseException:
            if postfix_start is not None and postfix_start.poll() is None:
                postfix_start.wait()
            self._stop_locked(info)
            raise
        info.dovecot_pid = self._dovecot_pid(info)
        info.postfix_pid = self._postfix_pid(info) if info.postfix else None
        info.started_at = time.time()
        save_info(info)
        set_marker(self.dms_dir, self.state_dir, present=True)
        return info

    def _ensure_cert(self) -> Path:
        cert, key = self._p("tls", "cert.pem"), self._p("tls", "key.pem")
        if cert.exists() and key.exists() and _run(
                ["openssl", "x509", "-checkend", "86400", "-noout", "-in", str(cert)]).returncode == 0:
            return cert
        san = "DNS:localhost,IP:127.0.0.1" + (f",IP:{self.host}" if self.host != DEFAULT_HOST else "")
        proc = _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                     "ec_paramgen_curve:prime256v1", "-nodes", "-days", "365",
                     "-subj", "/CN=mailctl sandbox", "-addext", f"subjectAltName={san}",
                     "-keyout", str(key), "-out", str(cert)])
        if proc.returncode != 0:
            raise SandboxError(f"openssl could not make the sandbox certificate:\n{proc.stderr}")
        os.chmod(key, 0o600)
        os.chmod(cert, 0o644)
        return cert

    def _write_configs(self, info: SandboxInfo, ids: _Ids) -> None:
        socket_user = "user = postfix" if self.with_postfix else ""
        values = {
            "INSTANCE": "mailctl-sandbox-"
            + hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:10],
            "RUN_DIR": str(self._p("run")), "DOVECOT_STATE_DIR": str(self._p("dovecot-state")),
            "HOST": info.host, "LOG_DIR": str(info.log_dir), "MAPS_DIR": str(self._p("maps")),
            "USERS_FILE": str(self._p("maps", "dovecot-users")),
            "MAIL_DIR": str(self._p("mail")), "MAIL_UID": str(ids.mail_uid),
            "MAIL_GID": str(ids.mail_gid), "INTERNAL_USER": ids.internal_user,
            "INTERNAL_GROUP": ids.internal_group, "LOGIN_USER": ids.login_user,
            "CHROOT_OFF": "" if os.geteuid() == 0 else "chroot =",
            "POSTFIX_SOCKET_USER": socket_user,
            "TLS_CERT": str(info.ca_file), "TLS_KEY": str(self._p("tls", "key.pem")),
            "POSTFIX_QUEUE_DIR": str(self._p("postfix", "spool")),
            "POSTFIX_DATA_DIR": str(self._p("postfix", "data")),
            "SMTP_PORT": str(info.ports.smtp), "SUBMISSION_PORT": str(info.ports.submission),
            "IMAP_PORT": str(info.ports.imap), "IMAPS_PORT": str(info.ports.imaps),
            "LMTP_PORT": str(info.ports.lmtp),
        }
        write_atomic(self.dovecot_conf, _template("dovecot.conf.in", values))
        if not self.with_postfix:
            return
        self.postfix_etc.mkdir(parents=True, exist_ok=True)
        spool, data = self._p("postfix", "spool"), self._p("postfix", "data")
        spool.mkdir(exist_ok=True)
        data.mkdir(exist_ok=True)
        os.chown(spool, 0, 0)
        os.chown(data, ids.postfix_uid, ids.postfix_gid)
        # Backdated: fresh files make every Postfix program wait ~2 s (gotcha 3).
        backdated = time.time() - 60
        for name in ("main.cf", "master.cf"):
            write_atomic(self.postfix_etc / name, _template(f"{name}.in", values),
                         mtime=backdated)
            os.utime(self.postfix_etc / name, (backdated, backdated))

    def _spawn_postfix(self) -> subprocess.Popen[bytes]:
        out = open(self._p("log", "postfix-start.log"), "ab")  # noqa: SIM115
        with out:
            return subprocess.Popen(["postfix", "-c", str(self.postfix_etc), "start"],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                    env=_env())

    def _finish_postfix(self, info: SandboxInfo, proc: subprocess.Popen[bytes]) -> None:
        if proc.wait(timeout=START_TIMEOUT) != 0:
            # postfix(1) only prints why when stderr is a terminal: ask again under script(1).
            check = _run(["script", "-qec", f"postfix -c {self.postfix_etc} check", "/dev/null"])
            detail = (check.stdout + check.stderr).strip() or _tail(self._p("log", "postfix.log"))
            raise SandboxError(f"Postfix did not start:\n{detail}\n(logs in {info.log_dir})")
        for port in (info.ports.smtp, info.ports.submission):
            _wait_greeting(info.host, port, b"220 ", "Postfix", info.log_dir)

    def _start_dovecot(self, info: SandboxInfo) -> None:
        errlog = self._p("log", "dovecot-start.log")
        # Never a pipe: the Dovecot master keeps the inherited stderr open for
        # its whole life, so a reader would wait for EOF forever (gotcha 4).
        with open(errlog, "ab") as out:
            rc = subprocess.call(["dovecot", "-c", str(self.dovecot_conf)], stdin=subprocess.DEVNULL,
                                 stdout=out, stderr=out, env=_env(), timeout=START_TIMEOUT)
        if rc != 0:
            detail = _tail(errlog) or _tail(self._p("log", "dovecot.log"))
            raise SandboxError(f"Dovecot did not start:\n{detail}\n(logs in {info.log_dir})")
        # The greeting, not the accept: before it, auth may not be ready (gotcha 6).
        _wait_greeting(info.host, info.ports.imap, b"* OK", "Dovecot", info.log_dir)

    # -- running state -----------------------------------------------------
    def _dovecot_pid(self, info: SandboxInfo) -> int | None:
        for pid in (procs.read_pidfile(self._p("run", "master.pid")), info.dovecot_pid):
            if pid and procs.alive(pid) and procs.is_dovecot_master(pid, self.dovecot_conf):
                return pid
        return None

    def _postfix_pid(self, info: SandboxInfo) -> int | None:
        pidfile = self._p("postfix", "spool", "pid", "master.pid")
        for pid in (procs.read_pidfile(pidfile), info.postfix_pid):
            if pid and procs.alive(pid) and procs.is_postfix_master(pid, self.postfix_etc):
                return pid
        return None

    def _running(self, info: SandboxInfo) -> dict[str, bool]:
        running = {"dovecot": self._dovecot_pid(info) is not None}
        if info.postfix:
            running["postfix"] = self._postfix_pid(info) is not None
        return running

    def _stop_locked(self, info: SandboxInfo) -> None:
        masters = [p for p in (self._postfix_pid(info) if info.postfix else None,
                               self._dovecot_pid(info)) if p]
        found = [procs.proc(pid) for pid in masters]
        # Both at once: Dovecot's master alone takes ~1.2 s to exit.
        procs.stop_masters([p for p in found if p], STOP_TIMEOUT, log.warning)

    def _reload_locked(self, info: SandboxInfo, force: bool) -> None:
        try:
            result = render(self.dms_dir, self._p("maps"),
                            implicit_self_aliases=info.implicit_self_aliases,
                            users_gid=_Ids.resolve(info.postfix).users_gid)
        except RenderError as exc:
            raise SandboxError(str(exc)) from None
        for warning in result.warnings:
            log.warning("%s", warning)
        postfix_maps = any(name.startswith("postfix-") for name in result.changed)
        pf = self._postfix_pid(info) if info.postfix else None
        dc = self._dovecot_pid(info)
        waits: list[procs.Proc] = []
        if pf and (force or postfix_maps):
            # Every child of the old generation exits once idle; new ones read the new maps.
            waits += procs.children(pf)
            os.kill(pf, signal.SIGHUP)
        if dc and (force or "dovecot-users" in result.changed):
            # passwd-file is re-checked at most once a second per auth process
            # (db-passwd-file.c), so a fresh auth process is the only sure way.
            waits += [c for c in procs.children(dc)
                      if any("auth" in a for a in procs.cmdline(c.pid)[:1])]
            os.kill(dc, signal.SIGHUP)
        left = procs.wait_gone(waits, RELOAD_WAIT)
        if left:
            log.warning("reload: pids %s still busy with old maps", [p.pid for p in left])
        if result.digest != info.digest:
            info.digest = result.digest
            save_info(info)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self._p(".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield


def default_state_dir() -> Path:
    """Where the CLI keeps its sandbox unless told otherwise.

    Not under $HOME: as root that is /root (mode 0700), which the dovecot and
    postfix users cannot enter. One per user, since the default ports are too.
    """
    return Path("/var/tmp") / f"mailctl-sandbox-{os.geteuid()}"


def notify_change(dms_dir: Path) -> bool:
    """Called after every write to a dms dir: reload the sandboxes serving it.

    Cheap when there is none (one failed open of the marker file). Returns
    True if at least one live sandbox serves `dms_dir` and now uses its
    files; raises SandboxError if the files cannot be rendered.
    """
    dms_dir = Path(dms_dir).absolute()
    done = False
    for state_dir in marker_entries(dms_dir):
        sandbox = Sandbox.from_state(state_dir) if state_dir.is_dir() else None
        if sandbox is not None and sandbox.dms_dir == dms_dir:
            done = sandbox.notify() or done
    return done


class _Ids:
    """Users and groups the daemons run as; all the invoking user's when unprivileged."""

    def __init__(self, mail_uid: int, mail_gid: int, internal_user: str, internal_group: str,
                 login_user: str, users_gid: int, postfix_uid: int, postfix_gid: int) -> None:
        self.mail_uid, self.mail_gid = mail_uid, mail_gid
        self.internal_user, self.internal_group = internal_user, internal_group
        self.login_user, self.users_gid = login_user, users_gid
        self.postfix_uid, self.postfix_gid = postfix_uid, postfix_gid

    @classmethod
    def resolve(cls, with_postfix: bool) -> _Ids:
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
            raise SandboxError(f"system user/group {exc} missing; reinstall dovecot-core/postfix")
        return cls(nobody.pw_uid, nobody.pw_gid, "dovecot", "dovecot", "dovenull", dovecot,
                   postfix.pw_uid if postfix else -1, postfix.pw_gid if postfix else -1)


_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": _SBIN_PATH}


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    """For short-lived helpers only (never a daemon: see gotcha 4)."""
    return subprocess.run(args, capture_output=True, text=True, env=_env(),
                          stdin=subprocess.DEVNULL, timeout=60, check=False)


def _template(name: str, values: dict[str, str]) -> str:
    text = resources.files("mailctl.sandbox").joinpath("templates", name).read_text()

    def sub(m: re.Match[str]) -> str:
        if m.group(1) not in values:
            raise KeyError(f"{name}: no value for @{m.group(1)}@")
        return values[m.group(1)]

    return re.sub(r"@([A-Z_]+)@", sub, text)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _wait_greeting(host: str, port: int, prefix: bytes, who: str, log_dir: Path) -> None:
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
                               f"{START_TIMEOUT:.0f}s (logs in {log_dir})")
        time.sleep(0.02)
