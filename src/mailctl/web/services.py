"""The one seam between the console's pages and everything else.

`create_app(services, settings)` takes any object with these methods: the real
one (`live.ConfigServices`, over a loaded config, its providers, the accounts
store and the DNS and probe libraries) or, in a test or benchmark, the same
class over a real sandbox. Methods block (they may call a provider); the
pages run them on a worker thread. Every failure is a library error that
`errors.from_library` turns into a page.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from mailctl.providers.base import AppPassword, Capabilities
    from mailctl.secret import Secret
    from mailctl.web.mailapps import MailServers
    from mailctl.web.state import DnsResult, ProbeRun
    from mailctl.web.yamledit import YamlChange


@dataclass(frozen=True, slots=True)
class DomainSummary:
    name: str
    provider: str
    provider_type: str
    declared: int  # mailboxes in the YAML
    present: int | None  # mailboxes at the provider (None: could not be read)
    to_create: int = 0  # declared objects the provider lacks
    drifted: int = 0  # objects whose declared fields differ
    undeclared: int = 0  # objects only the provider has
    error: str | None = None  # why the provider could not be read
    read_at: float | None = None
    dns: DnsResult | None = None
    probes: list[ProbeRun] = field(default_factory=list)
    tokens: int = 0

    @property
    def sync(self) -> str:
        """in_sync | to_create | drifted | unreadable, the worst that applies."""
        if self.error is not None:
            return "unreadable"
        if self.drifted or self.undeclared:
            return "drifted"
        if self.to_create:
            return "to_create"
        return "in_sync"


@dataclass(frozen=True, slots=True)
class MailboxRow:
    address: str
    name: str | None
    quota: int | None  # bytes declared (None: not managed, 0: unlimited)
    present: bool | None  # None: provider state unknown
    drifted: bool = False


@dataclass(frozen=True, slots=True)
class TokenRow:
    name: str
    domain: str
    prefix: str
    expiry: str
    usecount: int
    maxuse: int
    valid_until: int | None
    disabled: bool
    created: int


@dataclass(frozen=True, slots=True)
class Job:
    """A long operation in progress (backup, move) as far as mailctl runs them."""

    kind: str
    target: str
    started: float
    progress: str = ""


class ConsoleServices(Protocol):
    # -- what is declared ----------------------------------------------------
    def domain_names(self) -> list[str]: ...
    def is_mailbox(self, address: str) -> bool: ...
    def overview(self, domains: Collection[str], refresh: bool = False
                 ) -> list[DomainSummary]: ...
    def cached_overview(self, domains: Collection[str]) -> list[DomainSummary] | None:
        """Non-blocking: the overview from memory, or None when it needs a read."""
    def mailboxes(self, domain: str) -> list[MailboxRow]: ...

    # -- credentials (mailctl.credentials) -------------------------------------
    def capabilities(self, address: str) -> Capabilities: ...
    def reset_password(self, address: str) -> Secret: ...
    def set_password(self, address: str, password: Secret) -> None: ...
    def app_passwords(self, address: str) -> list[AppPassword]: ...
    def add_app_password(self, address: str, name: str) -> tuple[AppPassword, Secret]: ...
    def revoke_app_password(self, address: str, app_id: str) -> AppPassword: ...
    def usage(self, address: str) -> tuple[int | None, int | None]: ...

    # -- mail apps -------------------------------------------------------------
    def mail_servers(self, domain: str) -> MailServers: ...

    # -- invite tokens (accounts store) ----------------------------------------
    def tokens(self, domain: str) -> list[TokenRow]: ...
    def token_invite(self, domain: str, name: str) -> str | None:
        """The DCACCOUNT code, or None when the store keeps only the secret's hash."""
    def add_token(self, domain: str, name: str, expiry: str, maxuse: int,
                  prefix: str) -> tuple[TokenRow, str]:
        """The new token and its DCACCOUNT code (holding the secret)."""
    def disable_token(self, domain: str, name: str) -> TokenRow: ...

    # -- checks ----------------------------------------------------------------
    def run_dns_check(self, domain: str) -> DnsResult: ...
    def run_probe(self, domain: str) -> list[ProbeRun]: ...
    def jobs(self) -> list[Job]:
        """Non-blocking (memory only): running backups and moves."""

    # -- declared objects as YAML changes --------------------------------------
    def propose_mailbox(self, domain: str, local_part: str,
                        fields: dict[str, str]) -> YamlChange: ...
    def propose_mailbox_field(self, address: str, key: str, value: str) -> YamlChange: ...
