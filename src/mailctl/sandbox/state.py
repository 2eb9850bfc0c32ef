"""What a sandbox records about itself, so `status`/`down` work from a later process."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mailctl.errors import MailctlError
from mailctl.sandbox.render import write_atomic
from mailctl.secret import Secret

STATE_FILE = "sandbox.json"
# Lives in the dms config dir and lists the state dirs of the sandboxes that
# serve it, so a dms write can find them. dms ignores dotfiles.
MARKER_NAME = ".mailctl-sandbox"


class SandboxError(MailctlError, RuntimeError):
    """A problem the user can act on; the message says what and where."""


@dataclass(frozen=True, slots=True)
class Ports:
    smtp: int
    submission: int
    imap: int
    imaps: int
    lmtp: int

    def items(self) -> list[tuple[str, int]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


@dataclass(frozen=True, slots=True)
class OAuth2Passdb:
    """Let Dovecot accept XOAUTH2 and OAUTHBEARER tokens, validated by asking an OpenID
    provider's introspection endpoint (RFC 7662) with the client's credentials.

    The secret goes only into the passdb's args file (0640, Dovecot's group), never into
    sandbox.json, which any local user may read."""

    introspection_url: str  # e.g. http://127.0.0.1:PORT/token/introspection
    client_id: str
    client_secret: Secret
    username_attribute: str = "email"  # the introspection field holding the login name


# Above 1024 (no root needed for Dovecot) and off the usual test ports.
DEFAULT_PORTS = Ports(smtp=10025, submission=10587, imap=10143, imaps=10993, lmtp=10024)


@dataclass(slots=True)
class SandboxInfo:
    state_dir: Path
    dms_dir: Path
    host: str
    ports: Ports
    ca_file: Path
    lmtp_socket: Path
    log_dir: Path
    postfix: bool
    postfix_disabled_reason: str | None = None
    implicit_self_aliases: bool = False
    oauth2: bool = False  # XOAUTH2/OAUTHBEARER accepted (OAuth2Passdb); never its secret
    dovecot_pid: int | None = None
    postfix_pid: int | None = None
    started_at: float | None = None
    digest: str = ""  # of the dms files last rendered

    def to_json(self) -> str:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SandboxInfo:
        data: dict[str, Any] = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["ports"] = Ports(**data["ports"])
        for key in ("state_dir", "dms_dir", "ca_file", "lmtp_socket", "log_dir"):
            data[key] = Path(data[key])
        return cls(**data)


@dataclass(slots=True)
class SandboxStatus:
    state_dir: Path
    dms_dir: Path | None
    host: str | None
    ports: Ports | None
    ca_file: Path | None
    postfix_enabled: bool
    postfix_disabled_reason: str | None
    running: dict[str, bool] = field(default_factory=dict)
    pids: dict[str, int | None] = field(default_factory=dict)

    @property
    def up(self) -> bool:
        """Every daemon this sandbox is meant to run is running."""
        return bool(self.running) and all(self.running.values())

    @property
    def any_running(self) -> bool:
        return any(self.running.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; "running" is True only if every wanted daemon runs."""
        return {
            "running": self.up,
            "daemons": {name: {"running": up, "pid": self.pids.get(name)}
                        for name, up in self.running.items()},
            "host": self.host,
            "ports": dict(self.ports.items()) if self.ports else None,
            "ca_file": str(self.ca_file) if self.ca_file else None,
            "dms_dir": str(self.dms_dir) if self.dms_dir else None,
            "state_dir": str(self.state_dir),
            "postfix": self.postfix_enabled,
            "postfix_disabled_reason": self.postfix_disabled_reason,
        }


def load_info(state_dir: Path) -> SandboxInfo | None:
    try:
        return SandboxInfo.from_json((state_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"{state_dir / STATE_FILE} is not a sandbox state file: {exc}") from None


def save_info(info: SandboxInfo) -> None:
    write_atomic(info.state_dir / STATE_FILE, info.to_json(), mode=0o644)


def marker_entries(dms_dir: Path) -> list[Path]:
    try:
        text = (dms_dir / MARKER_NAME).read_text()
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(line.strip()) for line in text.splitlines() if line.strip()]


def set_marker(dms_dir: Path, state_dir: Path, present: bool) -> None:
    """Add or remove `state_dir` in the dms dir's marker; the file goes when empty."""
    entries = [e for e in marker_entries(dms_dir) if e != state_dir]
    if present:
        entries.append(state_dir)
    path = dms_dir / MARKER_NAME
    if entries:
        write_atomic(path, "".join(f"{e}\n" for e in entries), mode=0o644)
    elif os.path.lexists(path):
        path.unlink()
