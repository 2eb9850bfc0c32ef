"""The console's services over a loaded config: providers, accounts, DNS, probes.

Provider state is read once per provider and kept for `cache_seconds`, with
each domain's summary (in sync / N to create / drifted) computed at read time,
so a dashboard over thousands of mailboxes renders from memory; the refresh
button and every write through the console drop the cache. A provider that
cannot be read makes its domains "unreadable" with the reason, never an error
page for the whole dashboard.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailctl import credentials
from mailctl.model import AddressError, Kind, domain_of, normalise_address
from mailctl.provision.changes import Action
from mailctl.provision.plan import diff_domain
from mailctl.web.services import DomainSummary, Job, MailboxRow, TokenRow
from mailctl.web.state import ConsoleState, DnsResult, ProbeRun

if TYPE_CHECKING:
    from mailctl.accounts.model import Token
    from mailctl.accounts.service import AccountService
    from mailctl.config.load import Config
    from mailctl.providers.base import AppPassword, Capabilities
    from mailctl.secret import Secret
    from mailctl.web.mailapps import MailServers
    from mailctl.web.settings import ConsoleSettings
    from mailctl.web.yamledit import YamlChange

log = logging.getLogger(__name__)


@dataclass
class _DomainRead:
    present: int
    to_create: int
    drifted: int
    undeclared: int
    present_mailboxes: frozenset[str]
    drifted_mailboxes: frozenset[str]


@dataclass
class _ProviderRead:
    at: float
    error: str | None = None
    domains: dict[str, _DomainRead] = field(default_factory=dict)


class ConfigServices:
    def __init__(self, config: Config, settings: ConsoleSettings, *,
                 accounts: AccountService | None = None, state: ConsoleState | None = None
                 ) -> None:
        self.config = config
        self.settings = settings
        self.state = state or ConsoleState(None)
        self._accounts = accounts
        self._accounts_lock = threading.Lock()
        self._cache: dict[str, _ProviderRead] = {}
        self._token_cache: tuple[float, dict[str, int]] | None = None
        self._locks = {p: threading.Lock() for p in config.providers}

    # -- what is declared ----------------------------------------------------
    def domain_names(self) -> list[str]:
        return sorted(self.config.desired.domains)

    def is_mailbox(self, address: str) -> bool:
        try:
            addr = normalise_address(address)
        except AddressError:
            return False
        state = self.config.desired.domains.get(domain_of(addr))
        return state is not None and addr in state.mailboxes

    def _provider_read(self, pname: str, refresh: bool) -> _ProviderRead:
        with self._locks[pname]:
            cached = self._cache.get(pname)
            fresh = (cached is not None
                     and time.time() - cached.at < self.settings.cache_seconds)
            if cached is not None and fresh and not refresh:
                return cached
            read = self._read(pname)
            self._cache[pname] = read
            return read

    def _read(self, pname: str) -> _ProviderRead:
        from mailctl.providers.base import ProviderError
        from mailctl.secret import scrub

        names = self.config.domains_of(pname)
        out = _ProviderRead(time.time())
        try:
            actual = self.config.provider(pname).read(names)
        except ProviderError as exc:
            out.error = scrub(str(exc))
            log.warning("console: provider %s could not be read: %s", pname, out.error)
            return out
        explicit = self.config.providers[pname].cls.capabilities.domains
        for name in names:
            desired = self.config.desired.domains[name]
            cur = actual[name]
            changes = diff_domain(desired, cur, pname, explicit,
                                  self.config.desired.unmanaged.get(name, ()))
            boxes = [c for c in changes if c.kind is Kind.MAILBOX]
            out.domains[name] = _DomainRead(
                present=len(cur.mailboxes),
                to_create=sum(1 for c in changes if c.action is Action.CREATE),
                drifted=sum(1 for c in changes if c.action is Action.UPDATE),
                undeclared=sum(1 for c in changes if c.action is Action.DELETE),
                present_mailboxes=frozenset(cur.mailboxes),
                drifted_mailboxes=frozenset(c.key for c in boxes if c.action is Action.UPDATE))
        return out

    def cached_overview(self, domains: Collection[str]) -> list[DomainSummary] | None:
        """`overview` from memory, or None when a provider must be read first.

        Lets the dashboard answer on the event loop: a hop to a worker thread and
        back costs more than the page itself under load (the GIL's 5 ms switch
        interval, twice), measured in bench/console_bench.py."""
        now = time.time()
        for name in domains:
            pname = self.config.desired.provider_of.get(name)
            read = self._cache.get(pname) if pname else None
            if read is None or now - read.at >= self.settings.cache_seconds:
                return None
        cached = self._token_cache
        if cached is None or time.monotonic() - cached[0] >= self.TOKEN_COUNTS_TTL:
            return None
        return self.overview(domains)

    def overview(self, domains: Collection[str], refresh: bool = False
                 ) -> list[DomainSummary]:
        wanted = [d for d in self.domain_names() if d in domains]
        tokens = self._token_counts() if wanted else {}
        # One read per provider, not per domain: a provider's read covers all its
        # domains, and a refresh asked per domain read a 10-domain dms folder ten
        # times (4.3 of 5.0 s CPU for 10 x 1,000 mailboxes, profiled).
        reads: dict[str, _ProviderRead] = {}
        out = []
        for name in wanted:
            pname = self.config.desired.provider_of[name]
            read = reads.get(pname) or reads.setdefault(pname,
                                                        self._provider_read(pname, refresh))
            dr = read.domains.get(name)
            out.append(DomainSummary(
                name=name, provider=pname,
                provider_type=self.config.providers[pname].type_name,
                declared=len(self.config.desired.domains[name].mailboxes),
                present=dr.present if dr else None,
                to_create=dr.to_create if dr else 0, drifted=dr.drifted if dr else 0,
                undeclared=dr.undeclared if dr else 0, error=read.error, read_at=read.at,
                dns=self.state.dns(name), probes=self.state.probes(name),
                tokens=tokens.get(name, 0)))
        return out

    def mailboxes(self, domain: str) -> list[MailboxRow]:
        desired = self.config.desired.domains[domain]
        read = self._provider_read(self.config.desired.provider_of[domain], False)
        dr = read.domains.get(domain)
        return [MailboxRow(addr, mb.name, mb.quota,
                           None if dr is None else addr in dr.present_mailboxes,
                           dr is not None and addr in dr.drifted_mailboxes)
                for addr, mb in sorted(desired.mailboxes.items())]

    def _forget(self, address: str) -> None:
        pname = self.config.desired.provider_of.get(domain_of(address))
        if pname is not None:
            self._cache.pop(pname, None)

    # -- credentials -----------------------------------------------------------
    def capabilities(self, address: str) -> Capabilities:
        return credentials.capabilities(self.config, address)

    def reset_password(self, address: str) -> Secret:
        return credentials.reset_password(self.config, address)

    def set_password(self, address: str, password: Secret) -> None:
        credentials.reset_password(self.config, address, password)

    def app_passwords(self, address: str) -> list[AppPassword]:
        return credentials.list_app_passwords(self.config, address)

    def add_app_password(self, address: str, name: str) -> tuple[AppPassword, Secret]:
        return credentials.add_app_password(self.config, address, name)

    def revoke_app_password(self, address: str, app_id: str) -> AppPassword:
        return credentials.revoke_app_password(self.config, address, app_id)

    def usage(self, address: str) -> tuple[int | None, int | None]:
        """(declared quota, bytes used); either None where unknown."""
        addr, _ = credentials.mailbox(self.config, address)
        quota = self.config.desired.domains[domain_of(addr)].mailboxes[addr].quota
        return quota, credentials.usage(self.config, addr)

    # -- mail apps -------------------------------------------------------------
    def mail_servers(self, domain: str) -> MailServers:
        from mailctl.web.mailapps import MailServers, Server

        s = self.settings.mail_apps.get(domain) or self.settings.mail_apps.get("*")
        if s is not None and s.imap is not None and s.smtp is not None:
            return MailServers(domain, Server(s.imap.host, s.imap.port, s.imap.security),
                               Server(s.smtp.host, s.smtp.port, s.smtp.security),
                               s.accept_invalid_certificates, "config")
        acc = self.config.file.accounts
        if acc is not None and acc.login.imap is not None and acc.login.smtp is not None:
            i, m = acc.login.imap, acc.login.smtp
            return MailServers(domain, Server(i.host, i.port, i.security),
                               Server(m.host, m.port, m.security),
                               acc.login.accept_invalid_certificates, "accounts")
        from mailctl.accounts.qr import sandbox_login

        provider = self.config.provider(self.config.desired.provider_of[domain])
        sb = sandbox_login(provider)
        if sb is not None:
            return MailServers(domain, Server(sb["imap"].host, sb["imap"].port, "ssl"),
                               Server(sb["smtp"].host, sb["smtp"].port, "starttls"),
                               True, "sandbox")
        return self._profile_servers(domain)

    def _profile_servers(self, domain: str) -> MailServers:
        from mailctl.dns.profiles import ProfileError, fill
        from mailctl.dns.records import load_profiles, mx_hosts, template_values
        from mailctl.web.mailapps import from_profile

        spec = self._dns_spec(domain)
        try:
            profile, _ = load_profiles(spec)
        except ProfileError:
            return from_profile(domain, [], mx_hosts(spec)[0])
        values = template_values(spec)
        records = [(r.name, fill(r.value, values) or "") for r in profile.records
                   if r.rtype == "SRV"]
        return from_profile(domain, records, mx_hosts(spec)[0])

    def _dns_spec(self, domain: str):  # type: ignore[no-untyped-def]
        from mailctl.dns.settings import spec_from_settings

        block = self.config.file.domains[self.config.desired.raw_domain[domain]]
        ptype = self.config.providers[block.provider].type_name
        return spec_from_settings(domain, ptype, block.dns)

    # -- invite tokens -----------------------------------------------------------
    def _service(self) -> AccountService:
        with self._accounts_lock:
            if self._accounts is None:
                from mailctl.accounts.context import open_service

                self._accounts = open_service(self.config)
            return self._accounts

    TOKEN_COUNTS_TTL = 5.0

    def _token_counts(self) -> dict[str, int]:
        """Tokens per domain, kept a few seconds: a store query is most of a dashboard's
        server time otherwise (2.8 of 3 ms, profiled), and counts change rarely."""
        from mailctl.accounts.errors import AccountsError

        cached = self._token_cache
        if cached is not None and time.monotonic() - cached[0] < self.TOKEN_COUNTS_TTL:
            return cached[1]
        counts: dict[str, int] = {}
        try:
            for t in self._service().store.tokens():
                counts[t.domain] = counts.get(t.domain, 0) + 1
        except AccountsError as exc:
            log.warning("console: the accounts store could not be read: %s", exc.reason)
            return counts
        self._token_cache = (time.monotonic(), counts)
        return counts

    @staticmethod
    def _row(t: Token) -> TokenRow:
        return TokenRow(t.name, t.domain, t.prefix, t.expiry, t.usecount, t.maxuse,
                        t.valid_until, t.disabled, t.created)

    def _token(self, domain: str, name: str) -> Token:
        from mailctl.accounts.errors import NotFound

        tok = self._service().store.token(name)
        if tok.domain != domain:
            raise NotFound(f"no token {name} for {domain}")
        return tok

    def tokens(self, domain: str) -> list[TokenRow]:
        return [self._row(t) for t in self._service().store.tokens() if t.domain == domain]

    def _invite(self, tok: Token, secret: str | None) -> str | None:
        from mailctl.accounts.qr import dcaccount, invite_url

        if not (secret or tok.secret):
            return None  # the store keeps only its hash: the code was shown when made
        return dcaccount(invite_url(self._service().settings.web.public_url, tok, secret))

    def token_invite(self, domain: str, name: str) -> str | None:
        return self._invite(self._token(domain, name), None)

    def add_token(self, domain: str, name: str, expiry: str, maxuse: int,
                  prefix: str) -> tuple[TokenRow, str]:
        import secrets

        secret = secrets.token_urlsafe(24)
        tok = self._service().store.add_token(name, secret, domain, prefix, expiry, maxuse,
                                              None)
        self._token_cache = None
        invite = self._invite(tok, secret)
        assert invite is not None
        return self._row(tok), invite

    def disable_token(self, domain: str, name: str) -> TokenRow:
        self._token(domain, name)
        return self._row(self._service().store.update_token(name, disabled=True))

    # -- checks ----------------------------------------------------------------
    def run_dns_check(self, domain: str) -> DnsResult:
        from mailctl.dns.check import check_domains_sync
        from mailctl.dns.findings import Severity

        report = check_domains_sync([self._dns_spec(domain)], self.settings.dns_resolver)[0]
        sev = [f.severity for f in report.findings]
        result = DnsResult(
            domain, time.time(), report.status.value, sev.count(Severity.ERROR),
            sev.count(Severity.WARNING),
            [{"severity": f.severity.value, "code": f.code, "message": f.message,
              "fix": f.fix or ""} for f in report.sorted_findings()
             if f.severity is not Severity.INFO][:30])
        self.state.set_dns(result)
        return result

    def run_probe(self, domain: str) -> list[ProbeRun]:
        from mailctl.probe.engine import run_route
        from mailctl.probe.resolve import plan

        settings = self.config.file.probe
        names = [n for n, r in (settings.routes.items() if settings else ())
                 if domain_of(r.rcpt().lower()) == domain]
        if not names or settings is None:
            from mailctl.web.errors import NotFound

            raise NotFound(f"no probe route delivers to {domain} (probe.routes in the config)")
        p = plan(settings, self.config.base_dir, names)
        out = []
        for route in p.routes:
            res = run_route(route, settings.sweep_after)
            run = ProbeRun(route.name, domain, time.time(), res.ok, res.roundtrip_seconds,
                           res.summary(), time.time() if res.ok else None,
                           res.roundtrip_seconds if res.ok else None)
            out.append(self.state.record_probe(run))
        return out

    def jobs(self) -> list[Job]:
        """Backups and moves in progress (from memory: it must not block). mailctl has no
        resumable domain operations yet (the `domain/` package): this is their hook."""
        return []

    # -- declared objects as YAML changes --------------------------------------
    def _text(self) -> str:
        return self.config.path.read_text(encoding="utf-8")

    def propose_mailbox(self, domain: str, local_part: str,
                        fields: dict[str, str]) -> YamlChange:
        from mailctl.web.yamledit import add_mailbox

        return add_mailbox(self._text(), self.config.path.name,
                           self.config.desired.raw_domain[domain], local_part, fields,
                           self.config.path)

    def propose_mailbox_field(self, address: str, key: str, value: str) -> YamlChange:
        from mailctl.web.yamledit import set_mailbox_field

        addr, _ = credentials.mailbox(self.config, address)
        local, _, dom = addr.rpartition("@")
        return set_mailbox_field(self._text(), self.config.path.name,
                                 self.config.desired.raw_domain[dom], local, key, value,
                                 self.config.path)
