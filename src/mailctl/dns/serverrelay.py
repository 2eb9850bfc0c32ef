"""The mail server's side of `relays:`: one declaration for the server and for DNS.

Where mailctl manages the server's own configuration (docker-mailserver's
files, which the sandbox serves too), the domain's first relay is also its
outbound relay: `dns plan` shows the relay-file change next to the SPF change
and `dns apply` makes both, DNS first (SPF must authorise the new relay before
mail goes through it), so the server and SPF cannot disagree again.

mailctl owns a dms domain's lines in the relay files as soon as the domain
has a `dns:` block: `relays: []` removes them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.dns.hosts import HostConfigError

if TYPE_CHECKING:
    from mailctl.config.load import Config
    from mailctl.config.refs import Resolver
    from mailctl.providers.dms.relay import RelayEntry


@dataclass
class RelayChange:
    domain: str
    directory: str
    relay: str | None  # the relay profile now declared, None: no relay
    old: str | None  # [host]:port in the files now
    new: str | None
    credentials: str  # "unchanged", "set", "changed", "removed", "none"
    password_ref: str | None = None  # the reference, never the value
    _entry: RelayEntry | None = field(default=None, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"domain": self.domain, "directory": self.directory, "relay": self.relay,
                "old": self.old, "new": self.new, "credentials": self.credentials,
                "password_ref": self.password_ref}


def plan_server_relays(config: Config, names: list[str],
                       resolver: Resolver) -> tuple[list[RelayChange], list[str]]:
    """Relay-file changes for the dms domains among `names`, and notes on those skipped."""
    from mailctl.config.refs import RefError
    from mailctl.dns.profiles import ProfileError, get_profile
    from mailctl.dns.settings import spec_from_config
    from mailctl.providers.dms import relay as files

    changes: list[RelayChange] = []
    notes: list[str] = []
    for name in names:
        spec = spec_from_config(config, name)
        raw = config.desired.raw_domain[spec.domain]
        block = config.file.domains[raw]
        instance = config.providers.get(block.provider)
        if instance is None or instance.type_name != "dms" or block.dns is None:
            continue
        path = instance.settings.path  # type: ignore[attr-defined]  # DmsSettings
        directory = (config.base_dir / Path(str(path)).expanduser()).resolve()
        where = f"domains.{raw}.dns"
        entry: RelayEntry | None = None
        ref = None
        relay = spec.relays[0] if spec.relays else None
        if relay is not None:
            try:
                profile = get_profile("relays", relay, spec.profile_dirs)
            except ProfileError as exc:
                raise HostConfigError(f"{where}.relays: {exc}") from None
            smtp = block.dns.relay_smtp.get(relay)
            host = (smtp.host if smtp else None) or profile.smtp_host
            if not host:
                notes.append(f"{spec.domain}: the server's relay is not configured: relay "
                             f"{relay!r} has no SMTP host; set {where}.relay_smtp.{relay}.host")
                continue
            password = None
            if smtp and smtp.password:
                ref = smtp.password
                try:
                    password = resolver.resolve(smtp.password)
                except RefError as exc:
                    raise HostConfigError(f"{where}.relay_smtp.{relay}.password: {exc}"
                                          ) from None
            entry = files.RelayEntry(host, (smtp.port if smtp else None) or profile.smtp_port,
                                     smtp.username if smtp else None, password)
            problem = files.check_entry(entry)
            if problem:
                raise HostConfigError(f"{where}.relay_smtp.{relay}: {problem}")
        hop_differs, auth_differs = files.differs(directory, spec.domain, entry)
        if not hop_differs and not auth_differs:
            continue
        old = files.current(directory).get(spec.domain, (None, None, None))
        if entry is None or entry.username is None:
            creds = "removed" if old[1] else "none"
        elif old[1] is None:
            creds = "set"
        else:
            creds = "changed" if auth_differs else "unchanged"
        changes.append(RelayChange(spec.domain, str(directory), relay, old[0],
                                   entry.nexthop if entry else None, creds, ref, entry))
    return changes, notes


def apply_server_relays(changes: list[RelayChange]) -> list[tuple[RelayChange, str | None]]:
    """Write the relay files (grouped by directory) and reload the sandboxes serving them."""
    from mailctl.providers.dms import relay as files
    from mailctl.secret import scrub

    out: list[tuple[RelayChange, str | None]] = []
    by_dir: dict[str, list[RelayChange]] = {}
    for change in changes:
        by_dir.setdefault(change.directory, []).append(change)
    for directory, group in sorted(by_dir.items()):
        try:
            files.write(Path(directory), {c.domain: c._entry for c in group})
            from mailctl.sandbox import SandboxError, notify_change

            try:
                notify_change(Path(directory))
            except SandboxError as exc:
                out += [(c, f"relay files written, but the sandbox did not reload: {exc}")
                        for c in group]
                continue
        except OSError as exc:
            out += [(c, scrub(f"cannot write the relay files in {directory}: {exc}"))
                    for c in group]
            continue
        out += [(c, None) for c in group]
    return out
