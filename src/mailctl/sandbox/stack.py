"""A real Dovecot + Postfix on 127.0.0.1 serving a dms config dir, without systemd.

Why real daemons: the sandbox has to show that what the dms provider writes
is what a dms container would serve, and give the sync and probe code an
IMAP/SMTP server that behaves like one. Layout of the state dir::

    sandbox.json  dovecot.conf  tls/  maps/  run/  dovecot-state/  mail/  log/
    postfix/{etc,spool,data}

Recipe, timings and gotchas: /work/shared/notes/mailstack.md, section 2.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from mailctl.sandbox import daemons, procs
from mailctl.sandbox.daemons import Ids, Layout
from mailctl.sandbox.render import (
    APP_PASSWORDS_SEEN,
    DOVECOT_LOCAL,
    DOVECOT_MASTERS,
    DOVECOT_USERS,
    RenderError,
    RenderResult,
    render,
)
from mailctl.sandbox.state import (
    DEFAULT_PORTS,
    STATE_FILE,
    OAuth2Passdb,
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
STOP_TIMEOUT = 10.0
RELOAD_WAIT = 3.0
# sun_path holds 107 characters; Dovecot's longest socket names under
# base_dir ("token-login/tokenlogin", "login/imap-urlauth") need ~25 more.
_MAX_RUN_DIR = 78
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+@=-]+$")
_POSTFIX_PORTS = ("smtp", "submission")


class Sandbox:
    """One sandbox per state dir; its methods lock the state dir against each other."""

    def __init__(
        self,
        state_dir: Path,
        dms_dir: Path,
        ports: Ports | None = None,
        with_postfix: bool | None = None,
        *,
        host: str = DEFAULT_HOST,
        implicit_self_aliases: bool = False,
        oauth2: OAuth2Passdb | None = None,
    ) -> None:
        """`ports=None`: the running sandbox's ports, else DEFAULT_PORTS.
        `with_postfix=None`: Postfix iff root. `implicit_self_aliases`: see render.py.
        `oauth2`: also accept OAuth2 bearer tokens (applies when the daemons start)."""
        self.state_dir = Path(state_dir).absolute()
        self.dms_dir = Path(dms_dir).absolute()
        self.requested_ports = ports
        self.host = host
        self.implicit_self_aliases = implicit_self_aliases
        self.oauth2 = oauth2
        self.lay = Layout(self.state_dir)
        is_root = os.geteuid() == 0
        if with_postfix and not is_root:
            raise SandboxError("Postfix needs root (its master process starts as root)")
        self.with_postfix = is_root if with_postfix is None else with_postfix
        self.postfix_disabled_reason: str | None = None
        if not self.with_postfix:
            self.postfix_disabled_reason = (
                "disabled by the caller" if is_root else
                "not running as root: Postfix's master must start as root, so only "
                "Dovecot (IMAP, IMAPS, LMTP) runs")

    @classmethod
    def from_state(cls, state_dir: Path) -> Sandbox | None:
        """The sandbox recorded in `state_dir`, for `status`/`down` from a later process."""
        info = load_info(Path(state_dir).absolute())
        if info is None:
            return None
        sb = cls(info.state_dir, info.dms_dir, info.ports,
                 info.postfix and os.geteuid() == 0, host=info.host,
                 implicit_self_aliases=info.implicit_self_aliases)
        sb.postfix_disabled_reason = info.postfix_disabled_reason
        return sb

    # -- public API --------------------------------------------------------
    def up(self) -> SandboxInfo:
        """Start, or find running, and return how to connect; idempotent."""
        self._preflight()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.state_dir.stat().st_uid == os.geteuid():
            os.chmod(self.state_dir, 0o755)  # the daemons' users must get in
        with self._locked():
            info = load_info(self.state_dir)
            if info is not None:
                running = self._running(info)
                if all(running.values()):
                    self._check_same(info)
                    self._reload_locked(info, force=False)
                    return info
                if any(running.values()):
                    self._stop_locked(info)  # half a stack: start over cleanly
            return self._start_locked(info)

    def down(self, purge: bool = False) -> None:
        """Stop this sandbox's daemons, and only those; keep mail and logs unless `purge`."""
        if not (self.state_dir / STATE_FILE).exists():
            return  # not a sandbox's directory (or never started): nothing to stop or delete
        with self._locked():
            info = load_info(self.state_dir)
            if info is not None:
                self._stop_locked(info)
                set_marker(info.dms_dir, self.state_dir, present=False)
                info.dovecot_pid = info.postfix_pid = None
                save_info(info)
        if purge:
            shutil.rmtree(self.state_dir)

    def status(self) -> SandboxStatus:
        """From the live pid files and /proc, so a daemon that died shows as stopped."""
        info = load_info(self.state_dir) if self.state_dir.is_dir() else None
        if info is None:
            running = {"dovecot": False} | ({"postfix": False} if self.with_postfix else {})
            return SandboxStatus(self.state_dir, None, None, None, None, self.with_postfix,
                                 self.postfix_disabled_reason, running,
                                 dict.fromkeys(running, None))
        pids: dict[str, int | None] = {"dovecot": self._dovecot_pid(info)}
        if info.postfix:
            pids["postfix"] = self._postfix_pid(info)
        return SandboxStatus(info.state_dir, info.dms_dir, info.host, info.ports, info.ca_file,
                             info.postfix, info.postfix_disabled_reason,
                             {k: v is not None for k, v in pids.items()}, pids)

    def reload(self) -> None:
        """Re-render from the dms files; both daemons use the result once this returns."""
        with self._locked():
            info = load_info(self.state_dir)
            if info is None or not all(self._running(info).values()):
                raise SandboxError(f"the sandbox in {self.state_dir} is not (fully) running; "
                                   "run `up` first")
            self._reload_locked(info, force=True)

    def notify(self) -> bool:
        """Reload if running and the dms files changed; True if live and now in sync."""
        if not (self.state_dir / STATE_FILE).exists():
            return False
        with self._locked():
            info = load_info(self.state_dir)
            if info is None or info.dms_dir != self.dms_dir:
                return False
            if not all(self._running(info).values()):
                return False
            self._reload_locked(info, force=False)
            return True

    # -- starting ----------------------------------------------------------
    def _preflight(self) -> None:
        if not _SAFE_PATH.match(str(self.state_dir)):
            raise SandboxError(
                f"state dir {self.state_dir}: use letters, digits and ._-+@= only "
                "(it ends up unquoted in Postfix and Dovecot configs)")
        if len(str(self.lay.run)) > _MAX_RUN_DIR:
            raise SandboxError(
                f"state dir {self.state_dir} is too long for Unix socket paths "
                f"(keep it under {_MAX_RUN_DIR - 4} characters)")
        if not self.dms_dir.is_dir():
            raise SandboxError(f"dms config dir {self.dms_dir} does not exist")
        need = ["dovecot", "openssl"] + (["postfix", "script"] if self.with_postfix else [])
        missing = [b for b in need if not shutil.which(b, path=daemons.SBIN_PATH)]
        if missing:
            raise SandboxError(
                f"missing {', '.join(missing)}; on Debian: apt-get install "
                "dovecot-imapd dovecot-lmtpd postfix openssl")
        if os.geteuid() == 0:
            # Dovecot and Postfix drop root: every parent must be searchable by others.
            for parent in reversed(self.state_dir.parents):
                if parent.exists() and not parent.stat().st_mode & 0o001:
                    raise SandboxError(
                        f"{parent} (mode {parent.stat().st_mode & 0o777:o}) is not searchable "
                        f"by other users, so the dovecot/postfix users cannot reach "
                        f"{self.state_dir}; pick a state dir under /tmp or /var/tmp")

    def _check_same(self, info: SandboxInfo) -> None:
        if info.dms_dir != self.dms_dir:
            raise SandboxError(f"{self.state_dir} already serves {info.dms_dir}; `down` first")
        if self.requested_ports is not None and self.requested_ports != info.ports:
            raise SandboxError(f"already running on {info.ports}; `down` first")

    def _check_ports(self, ports: Ports) -> None:
        values = [p for _, p in ports.items()]
        if len(set(values)) != len(values):
            raise SandboxError(f"ports must differ: {ports}")
        for name, port in ports.items():
            if name in _POSTFIX_PORTS and not self.with_postfix:
                continue
            why = daemons.port_free(self.host, port)
            if why:
                raise SandboxError(f"{name} port {self.host}:{port} is not available ({why}); "
                                   "choose other ports")

    def _render(self, info_users_gid: int, implicit: bool, postfix_gid: int = -1) -> RenderResult:
        try:
            result = render(self.dms_dir, self.lay.maps, implicit_self_aliases=implicit,
                            users_gid=info_users_gid, postfix_gid=postfix_gid)
        except RenderError as exc:
            raise SandboxError(str(exc)) from None
        for warning in result.warnings:
            log.warning("%s", warning)
        return result

    def _start_locked(self, old: SandboxInfo | None) -> SandboxInfo:
        ports = self.requested_ports or (old.ports if old else DEFAULT_PORTS)
        self._check_ports(ports)
        ids = Ids.resolve(self.with_postfix)
        daemons.prepare_dirs(self.lay, ids, self.with_postfix)
        ca_file = daemons.ensure_cert(self.lay, self.host)
        result = self._render(ids.users_gid, self.implicit_self_aliases, ids.postfix_gid)
        info = SandboxInfo(
            state_dir=self.state_dir, dms_dir=self.dms_dir, host=self.host, ports=ports,
            ca_file=ca_file, lmtp_socket=self.lay.run / "lmtp", log_dir=self.lay.logs,
            postfix=self.with_postfix, postfix_disabled_reason=self.postfix_disabled_reason,
            implicit_self_aliases=self.implicit_self_aliases, digest=result.digest,
            oauth2=self.oauth2 is not None)
        daemons.write_configs(self.lay, info, ids, self.oauth2)
        postfix_start: subprocess.Popen[bytes] | None = None
        try:
            if self.with_postfix:
                postfix_start = daemons.spawn_postfix(self.lay)
            daemons.start_dovecot(self.lay, info)
            if postfix_start is not None:
                daemons.finish_postfix(self.lay, info, postfix_start)
        except BaseException:
            if postfix_start is not None:
                postfix_start.wait()
            self._stop_locked(info)  # never leave half a stack behind
            raise
        info.dovecot_pid = self._dovecot_pid(info)
        info.postfix_pid = self._postfix_pid(info) if info.postfix else None
        info.started_at = time.time()
        save_info(info)
        set_marker(self.dms_dir, self.state_dir, present=True)
        return info

    # -- running state -----------------------------------------------------
    def _dovecot_pid(self, info: SandboxInfo) -> int | None:
        """The live pid file first: a master restarted by hand has a new pid."""
        for pid in (procs.read_pidfile(self.lay.run / "master.pid"), info.dovecot_pid):
            if pid and procs.alive(pid) and procs.is_dovecot_master(pid, self.lay.dovecot_conf):
                return pid
        return None

    def _postfix_pid(self, info: SandboxInfo) -> int | None:
        for pid in (procs.read_pidfile(self.lay.postfix_pidfile), info.postfix_pid):
            if pid and procs.alive(pid) and procs.is_postfix_master(pid, self.lay.postfix_etc):
                return pid
        return None

    def _running(self, info: SandboxInfo) -> dict[str, bool]:
        running = {"dovecot": self._dovecot_pid(info) is not None}
        if info.postfix:
            running["postfix"] = self._postfix_pid(info) is not None
        return running

    def _stop_locked(self, info: SandboxInfo) -> None:
        pids = [self._postfix_pid(info) if info.postfix else None, self._dovecot_pid(info)]
        masters = [p for p in (procs.proc(pid) for pid in pids if pid) if p]
        # Both at once: Dovecot's master alone takes ~1.1 s (it sleeps 1 s after
        # telling its children to close their listeners).
        procs.stop_masters(masters, STOP_TIMEOUT, log.warning)

    def _reload_locked(self, info: SandboxInfo, force: bool) -> None:
        ids = Ids.resolve(info.postfix)
        result = self._render(ids.users_gid, info.implicit_self_aliases, ids.postfix_gid)
        postfix_maps = any(name.startswith("postfix-") for name in result.changed)
        pf = self._postfix_pid(info) if info.postfix else None
        dc = self._dovecot_pid(info)
        old: list[procs.Proc] = []
        if pf and (force or postfix_maps):
            # texthash maps are read at process start. After SIGHUP every child
            # of the old generation exits once idle; wait for that, or a message
            # sent right now could still meet an old cleanup/smtpd.
            old += procs.children(pf)
            os.kill(pf, signal.SIGHUP)
        dovecot_inputs = {DOVECOT_USERS, DOVECOT_LOCAL, APP_PASSWORDS_SEEN, DOVECOT_MASTERS}
        if dc and (force or dovecot_inputs & set(result.changed)):
            # An auth process re-checks the passwd-file at most once a second
            # (db-passwd-file.c), so only a fresh auth process is sure to see it.
            old += [c for c in procs.children(dc) if _is_auth(procs.cmdline(c.pid))]
            os.kill(dc, signal.SIGHUP)
        left = procs.wait_gone(old, RELOAD_WAIT)
        if left:
            log.warning("reload: pids %s are still busy with the old maps", [p.pid for p in left])
        if result.digest != info.digest:
            info.digest = result.digest
            save_info(info)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.state_dir / ".lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield


def _is_auth(args: list[str]) -> bool:
    """Dovecot titles its processes `dovecot-<instance_name>/auth`."""
    return bool(args) and args[0].split(" ")[0].endswith("/auth")


def default_state_dir() -> Path:
    """Where the CLI keeps its sandbox unless told otherwise.

    Not under $HOME: as root that is /root (mode 0700), which the dovecot and
    postfix users cannot enter. One per user, since the default ports are too.
    """
    return Path("/var/tmp") / f"mailctl-sandbox-{os.geteuid()}"


def notify_change(dms_dir: Path) -> bool:
    """Called after every write to a dms dir: reload the sandboxes serving it.

    Cheap when there is none (one failed open of a marker file). True if at
    least one live sandbox serves `dms_dir` and now serves its current files
    (whether or not that needed a reload). Raises SandboxError if the files
    cannot be rendered.
    """
    dms_dir = Path(dms_dir).absolute()
    done = False
    for state_dir in marker_entries(dms_dir):
        sandbox = Sandbox.from_state(state_dir) if state_dir.is_dir() else None
        if sandbox is not None and sandbox.dms_dir == dms_dir:
            done = sandbox.notify() or done
    return done


def for_folder(
    dms_dir: Path, state_dir: Path | None = None, ports: Ports | None = None
) -> Sandbox:
    """The sandbox that serves `dms_dir`: by default one state dir per folder, outside
    $HOME (root's is 0700 and the daemons could not enter it), so two configs get two."""
    dms_dir = Path(dms_dir).resolve()
    if state_dir is None:
        import hashlib

        tag = hashlib.sha256(str(dms_dir).encode()).hexdigest()[:8]
        default = default_state_dir()
        state_dir = default.with_name(f"{default.name}-{tag}")
    return Sandbox(Path(state_dir).resolve(), dms_dir, ports)
