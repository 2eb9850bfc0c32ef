"""The fetch daemon in IMAP IDLE, against a real "remote" Dovecot, run as a user would:
`mailctl fetch -f fetch.yaml` (no --once) in a subprocess, stopped with SIGTERM."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from mailctl.sync.fetchd import cmd_fetch
from mailctl.sync.imapwire import Connection
from tests.fixtures.mailstack import MailStack, lmtp_deliver, make_message, wait_for_message
from tests.sync.helpers import ROOT, account, dump, fill, message, pwfile, url

pytestmark = pytest.mark.mailstack
T0 = 1_650_000_000
# Dovecot holds IDLE notifications ~0.5 s; the poll interval is 60 s, so a delivery
# within this bound can only have come through IDLE.
WITHIN = 2.0  # measured here: 0.5 s


class Daemon:
    """`python -m mailctl fetch -f CFG --json` with its JSON report lines in a queue."""

    def __init__(self, cfg: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailctl", "fetch", "-f", str(cfg), "--json"], cwd=ROOT,
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with contextlib.suppress(ValueError):
                self.lines.put(json.loads(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        self.err.extend(self.proc.stderr)

    def report(self, timeout: float = 30) -> dict[str, Any]:
        """The next account report the daemon printed."""
        try:
            got = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no report from the daemon; stderr: {self.err}") from None
        assert len(got["accounts"]) == 1
        return dict(got["accounts"][0])

    def stop(self) -> tuple[int, float]:
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=10)
        return code, time.monotonic() - t

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def daemon(cfg: Path) -> Iterator[Daemon]:
    d = Daemon(cfg)
    try:
        yield d
    finally:
        d.kill()


class Proxy:
    """A TCP relay in front of the remote Dovecot whose connections the test can cut."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.port = self.lsock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [a, b]
            self.accepted += 1
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Every relayed connection dropped, as by a NAT timeout or a server restart."""
        conns, self.conns = self.conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.lsock.close()
        self.cut()


def _config(tmp: Path, local: MailStack, src: str, pw: str, to: str, **extra: object) -> Path:
    p = tmp / "fetch.yaml"
    acct = {"src": src, "password_file": pwfile(tmp, pw, "remote.pw"), "to": to, **extra}
    p.write_text(yaml.safe_dump({"deliver": {"lmtp": str(local.info.lmtp_socket)},
                                 "poll_interval": 60, "state": str(tmp / "fetch.db"),
                                 "accounts": [acct]}))
    return p


def _arrives(stack: MailStack, user: str, pw: str, marker: str) -> float:
    """Seconds until the message with `marker` is in the local INBOX (fails after 10 s)."""
    t = time.monotonic()
    assert wait_for_message(stack.info, user, pw, marker, timeout=10) is not None, marker
    return time.monotonic() - t


def test_idle_wire_waits_for_exists_and_times_out(mailstack: MailStack) -> None:
    user, pw = account(mailstack, "idler")
    info = mailstack.info
    c = Connection(info.host, info.ports.imap)
    from mailctl.secret import Secret

    c.login(user, Secret(pw))
    assert "IDLE" in c.capabilities
    c.run(b"EXAMINE INBOX")
    c.new_mail = False
    t = time.monotonic()
    assert c.idle(0.3) is False and 0.25 < time.monotonic() - t < 2
    timer = threading.Timer(0.2, lmtp_deliver, (info, [user], make_message("wire-idle")))
    timer.start()
    t = time.monotonic()
    assert c.idle(10) is True
    assert time.monotonic() - t < WITHIN
    timer.join()
    line, _ = c.run(b"NOOP")  # DONE ended the IDLE cleanly; the session goes on
    assert b"OK" in line
    c.logout()


def test_fetch_daemon_idles_delivers_at_once_stops_on_sigterm_and_resumes(
        mailstack: MailStack, mailstack_factory: Callable[..., MailStack],
        tmp_path: Path) -> None:
    remote = mailstack_factory()
    far, fp = account(remote, "faraway")
    home, hp = account(mailstack, "nearby")
    fill(remote.info, far, fp, {"INBOX": [(message(1000), "()", T0)]})
    cfg = _config(tmp_path, mailstack, url(remote.info, far), fp, home)  # mode: default
    with daemon(cfg) as d:
        first = d.report()
        assert (first["delivered"], first["errors"]) == (1, [])
        for n in (1, 2):
            lmtp_deliver(remote.info, [far], make_message(f"idle-{n}-{tmp_path.name}"))
            took = _arrives(mailstack, home, hp, f"idle-{n}-{tmp_path.name}")
            assert took < WITHIN, f"message {n} took {took:.2f} s with a 60 s poll interval"
            assert d.report()["delivered"] == 1
        code, took = d.stop()
        assert code == 0 and took < 3, (code, took, d.err)
        assert not any("Traceback" in line for line in d.err), d.err
    inbox = dump(mailstack.info, home, hp)["INBOX"]
    assert len(inbox) == 3
    # a restart: everything is known, nothing is delivered twice
    with daemon(cfg) as d:
        again = d.report()
        assert (again["delivered"], again["skipped"], again["errors"]) == (0, 3, [])
        lmtp_deliver(remote.info, [far], make_message(f"idle-3-{tmp_path.name}"))
        assert _arrives(mailstack, home, hp, f"idle-3-{tmp_path.name}") < WITHIN
        assert d.report()["delivered"] == 1
        assert d.stop()[0] == 0
    inbox = dump(mailstack.info, home, hp)["INBOX"]
    assert len(inbox) == 4 and len({b for b, _, _ in inbox}) == 4
    assert len(dump(remote.info, far, fp)["INBOX"]) == 4  # keep: true by default


def test_fetch_daemon_survives_a_dropped_connection_and_deletes_at_source(
        mailstack: MailStack, mailstack_factory: Callable[..., MailStack],
        tmp_path: Path) -> None:
    remote = mailstack_factory()
    far, fp = account(remote, "flaky")
    home, hp = account(mailstack, "steady")
    proxy = Proxy(remote.info.ports.imap)
    try:
        src = f"imap://{far}@127.0.0.1:{proxy.port}"
        cfg = _config(tmp_path, mailstack, src, fp, home, keep=False, mode="idle")
        with daemon(cfg) as d:
            assert d.report()["errors"] == []  # empty at first
            lmtp_deliver(remote.info, [far], make_message(f"drop-1-{tmp_path.name}"))
            assert _arrives(mailstack, home, hp, f"drop-1-{tmp_path.name}") < WITHIN
            assert d.report()["deleted"] == 1
            proxy.cut()  # mid-IDLE
            dropped = d.report()
            assert dropped["errors"] and "closed" in dropped["errors"][0]
            lmtp_deliver(remote.info, [far], make_message(f"drop-2-{tmp_path.name}"))
            assert _arrives(mailstack, home, hp, f"drop-2-{tmp_path.name}") < 5  # 1 s backoff
            rep = d.report()
            assert (rep["delivered"], rep["deleted"], rep["errors"]) == (1, 1, [])
            assert proxy.accepted == 2
            assert d.stop()[0] == 0
    finally:
        proxy.close()
    inbox = dump(mailstack.info, home, hp)["INBOX"]
    assert len(inbox) == 2 and len({b for b, _, _ in inbox}) == 2
    assert dump(remote.info, far, fp)["INBOX"] == []


@pytest.mark.parametrize("bad", [{"mode": "push"}, {"poll_interval": 0},
                                 {"accounts_mode": "sometimes"}])
def test_fetch_config_rejects_bad_mode_and_interval(tmp_path: Path, bad: dict[str, object],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    acct: dict[str, object] = {"src": "imap://a@localhost", "to": "a@localhost"}
    cfg: dict[str, object] = {"deliver": {"lmtp": "/nonexistent"}, "accounts": [acct]}
    if "accounts_mode" in bad:
        acct["mode"] = bad["accounts_mode"]
    else:
        cfg.update(bad)
    p = tmp_path / "fetch.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert cmd_fetch(p) == 64
    assert "must be" in capsys.readouterr().err


def test_fetch_daemon_poll_mode_polls_and_stops_on_sigterm(
        mailstack: MailStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`mode: poll` never IDLEs (the same server offers IDLE): passes every poll_interval."""
    far, fp = account(mailstack, "polled")
    home, hp = account(mailstack, "pollhome")
    cfg = _config(tmp_path, mailstack, url(mailstack.info, far), fp, home, mode="poll",
                  poll_interval=0.5)
    threading.Timer(0.5, lmtp_deliver, (mailstack.info, [far], make_message("poll-1"))).start()
    threading.Timer(2.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert cmd_fetch(cfg, as_json=True) == 0
    reps = [json.loads(line)["accounts"][0] for line in capsys.readouterr().out.splitlines()]
    assert len(reps) >= 3 and sum(r["delivered"] for r in reps) == 1
    assert len(dump(mailstack.info, home, hp)["INBOX"]) == 1
