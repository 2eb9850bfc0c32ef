"""Sources against the declared configuration, and verdicts a person can act on.

Pure logic over rows from the store and the resolved senders (networks.py):
no DNS, no database, so every verdict is tested on exact inputs. A source IP
belongs to the provider, a configured relay, a declared SPF extra, a former
relay (a relay profile the config no longer declares), or is unknown.
Verdicts name the cause where the data shows it: the relay whose include is
missing from the published SPF, the bounce domain that makes SPF pass but not
align, the d= a relay signs with instead of the domain.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mailctl.reports.networks import DomainSenders, Sender

CLASSES = ("provider", "relay", "declared", "former", "unknown")
UNKNOWN_VERDICTS = 20  # unknown sources named one by one; the rest are summed up
TLS_FIXES = {
    "certificate-expired": "renew the certificate of {mx}",
    "certificate-host-mismatch": "the certificate of {mx} does not name {mx}: reissue it",
    "certificate-not-trusted": "use a certificate from a public CA on {mx}",
    "starttls-not-supported": "enable STARTTLS on {mx}",
    "validation-failure": "the certificate chain of {mx} does not validate",
    "sts-policy-fetch-error": "https://mta-sts.{domain}/.well-known/mta-sts.txt could not be "
                              "fetched: check the host, its certificate and the file",
    "sts-policy-invalid": "the MTA-STS policy of {domain} does not parse: check its syntax",
    "sts-webpki-invalid": "the certificate of mta-sts.{domain} is not valid",
    "tlsa-invalid": "the TLSA records of {mx} do not match its certificate",
    "dnssec-invalid": "DNSSEC validation of {domain}'s MX or TLSA records fails",
    "dane-required": "the receiving side requires DANE: publish TLSA records for {mx}",
}


@dataclass
class Source:
    cls: str
    name: str  # sender name, or the IP of an unknown source
    title: str
    ips: set[str] = field(default_factory=set)
    messages: int = 0
    dmarc_pass: int = 0
    spf_aligned: int = 0
    dkim_aligned: int = 0
    rdns: str = ""
    envelope: Counter[str] = field(default_factory=Counter)  # envelope_from domains
    dkim_pass: Counter[str] = field(default_factory=Counter)  # d= of passing signatures
    dkim_fail: Counter[str] = field(default_factory=Counter)  # "d= s=" of failing ones
    results: Counter[tuple[str, str]] = field(default_factory=Counter)  # (spf, dkim) aligned

    def as_dict(self) -> dict[str, Any]:
        return {"class": self.cls, "name": self.name, "title": self.title,
                "ips": sorted(self.ips)[:50], "rdns": self.rdns, "messages": self.messages,
                "dmarc_pass": self.dmarc_pass, "spf_aligned": self.spf_aligned,
                "dkim_aligned": self.dkim_aligned}


@dataclass
class Verdict:
    severity: str  # error | warning | info | ok
    code: str
    text: str
    fix: str = ""
    source_class: str = ""
    source: str = ""
    messages: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "code": self.code, "text": self.text,
                "fix": self.fix, "class": self.source_class, "source": self.source,
                "messages": self.messages}


@dataclass
class DomainSummary:
    domain: str
    declared: bool
    reports: dict[str, Any] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)
    days: dict[int, dict[str, list[int]]] = field(default_factory=dict)  # day -> cls -> [ok, bad]
    tls: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    unknown_dns: list[str] = field(default_factory=list)

    @property
    def messages(self) -> int:
        return sum(s.messages for s in self.sources)


def _aligned(a: str, b: str) -> bool:
    from mailctl.dns.psl import same_organisation

    return bool(a) and bool(b) and same_organisation(a, b)


def _split(auth: str) -> list[tuple[str, str, str]]:
    """"d=x s=y pass; d=z fail" -> [(x, y, pass), (z, "", fail)]."""
    out = []
    for part in auth.split("; "):
        words = part.split()
        if not words or not words[0].startswith("d="):
            continue
        d = words[0][2:]
        sel = next((w[2:] for w in words[1:-1] if w.startswith("s=")), "")
        out.append((d, sel, words[-1] if len(words) > 1 else ""))
    return out


def classify(domain: str, rows: list[tuple[Any, ...]], senders: DomainSenders | None,
             rdns: dict[str, str] | None = None) -> DomainSummary:
    """Rows are store.dmarc_rows(): (day, ip, spf, dkim, disposition, envelope_from,
    spf_auth, dkim_auth, messages)."""
    out = DomainSummary(domain, senders is not None)
    by_key: dict[tuple[str, str], Source] = {}
    for day, ip, spf_r, dkim_r, _disp, env, _spf_auth, dkim_auth, n in rows:
        n = int(n)
        sender: Sender | None = senders.match(ip) if senders else None
        if sender is not None:
            key = (sender.cls, sender.name)
            src = by_key.get(key)
            if src is None:
                src = by_key[key] = Source(sender.cls, sender.name, sender.title)
        else:
            key = ("unknown", ip)
            src = by_key.get(key)
            if src is None:
                src = by_key[key] = Source("unknown", ip, ip, rdns=(rdns or {}).get(ip, ""))
        src.ips.add(ip)
        src.messages += n
        ok = spf_r == "pass" or dkim_r == "pass"
        src.dmarc_pass += n if ok else 0
        src.spf_aligned += n if spf_r == "pass" else 0
        src.dkim_aligned += n if dkim_r == "pass" else 0
        src.results["pass" if spf_r == "pass" else "fail",
                    "pass" if dkim_r == "pass" else "fail"] += n
        if env:
            src.envelope[env] += n
        for d, sel, res in _split(dkim_auth):
            if res == "pass":
                src.dkim_pass[d] += n
            else:
                src.dkim_fail[f"d={d}" + (f" s={sel}" if sel else "")] += n
        cell = out.days.setdefault(int(day), {}).setdefault(src.cls, [0, 0])
        cell[0 if ok else 1] += n
    order = {c: i for i, c in enumerate(CLASSES)}
    out.sources = sorted(by_key.values(), key=lambda s: (order[s.cls], -s.messages, s.name))
    if senders is not None:
        out.unknown_dns = list(senders.unknown)
    days = max(1, len(out.days))
    unknown_n = 0
    for s in out.sources:
        if s.cls in ("provider", "relay", "declared"):
            out.verdicts.append(_configured(domain, s, senders))
        elif s.cls == "former":
            per_day = max(1, round(s.messages / days))
            out.verdicts.append(Verdict(
                "warning", "former.still_sending",
                f"{s.title} still sends {per_day:,} messages/day although it is no longer "
                "your relay", f"stop what still sends through {s.title}, or declare it again "
                "in dns.relays", s.cls, s.name, s.messages))
        else:
            unknown_n += 1
            if unknown_n <= UNKNOWN_VERDICTS:
                out.verdicts.append(_unknown(domain, s, senders is not None))
    if unknown_n > UNKNOWN_VERDICTS:
        rest = [s for s in out.sources if s.cls == "unknown"][UNKNOWN_VERDICTS:]
        out.verdicts.append(Verdict(
            "info", "unknown.more", f"{len(rest)} more unknown sources, "
            f"{sum(s.messages for s in rest):,} messages", "", "unknown", "",
            sum(s.messages for s in rest)))
    return out


def _configured(domain: str, s: Source, senders: DomainSenders | None) -> Verdict:
    label = f"{s.cls} {s.title}" if s.cls != "declared" else f"declared sender {s.title}"
    spf_bad = s.messages - s.spf_aligned
    dkim_bad = s.messages - s.dkim_aligned
    dmarc_bad = s.messages - s.dmarc_pass
    if not spf_bad and not dkim_bad:
        return Verdict("ok", "sender.ok", f"{label}: {s.messages:,} messages, DMARC pass "
                       "(SPF and DKIM aligned)", "", s.cls, s.name, s.messages)
    parts: list[str] = []
    fixes: list[str] = []
    code = "sender.dkim_fail"
    if spf_bad:
        code = "sender.spf_fail"
        how = "" if spf_bad == s.messages else f" for {spf_bad:,}"
        cause, fix = _spf_cause(domain, s, senders)
        if cause == "missing_include":
            code = "sender.spf_missing_include"
        parts.append(f"SPF fail (not aligned){how} — {fix[0]}")
        fixes.append(fix[1])
    if dkim_bad:
        how = "" if dkim_bad == s.messages else f" for {dkim_bad:,}"
        cause_text, fix_text = _dkim_cause(domain, s)
        parts.append(f"DKIM fail{how} — {cause_text}")
        fixes.append(fix_text)
    severity = "error" if dmarc_bad else "warning"
    tail = f"; DMARC fail for {dmarc_bad:,}" if dmarc_bad and dmarc_bad != s.messages else (
        "; DMARC fail" if dmarc_bad else "; DMARC passes through the other")
    return Verdict(severity, code, f"{label}: {s.messages:,} messages, " + "; ".join(parts)
                   + tail, "; ".join(fixes), s.cls, s.name, s.messages)


def _spf_cause(domain: str, s: Source, senders: DomainSenders | None
               ) -> tuple[str, tuple[str, str]]:
    sender = next((x for x in senders.senders if x.name == s.name and x.cls == s.cls),
                  None) if senders else None
    includes = sender.includes if sender else ()
    env = s.envelope.most_common(1)[0][0] if s.envelope else ""
    if includes and senders is not None and senders.published is not None and not (
            set(includes) & senders.published):
        inc = includes[0]
        return "missing_include", (f"SPF lacks include:{inc}",
                                   f"add include:{inc} to the SPF record of {domain}")
    if env and not _aligned(env, domain):
        return "unaligned", (f"SPF checks {env}, not aligned with {domain}",
                             f"set a return-path (bounce domain) under {domain} at {s.title}, "
                             "or rely on DKIM")
    if senders is not None and senders.published is None:
        return "unknown", ("the published SPF could not be read",
                           f"retry; check the SPF record of {domain}")
    return "fails", ("SPF fails although the record authorises it",
                     f"check that {s.title} sends from the networks its SPF include lists")


def _dkim_cause(domain: str, s: Source) -> tuple[str, str]:
    foreign = [d for d, _ in s.dkim_pass.most_common() if not _aligned(d, domain)]
    if foreign and not any(_aligned(d, domain) for d in s.dkim_pass):
        return (f"signed as d={foreign[0]}, not aligned",
                f"publish {s.title}'s DKIM key for {domain} so it signs as d={domain}")
    own_fail = [k for k in s.dkim_fail if _aligned(k.split()[0][2:], domain)]
    if own_fail:
        sel = next((w[2:] for w in own_fail[0].split() if w.startswith("s=")), "")
        where = f"{sel}._domainkey.{domain}" if sel else f"the selector's key under {domain}"
        return (f"the signature for {own_fail[0]} does not verify",
                f"check the published key at {where}")
    return ("no aligned DKIM signature", f"enable DKIM signing for {domain} at {s.title}")


def _unknown(domain: str, s: Source, declared: bool) -> Verdict:
    who = f"{s.name} ({s.rdns})" if s.rdns else s.name
    if s.dmarc_pass and s.dkim_aligned >= s.messages // 2:
        return Verdict("info", "unknown.forwarder",
                       f"unknown source {who} passes DMARC with an aligned DKIM signature: "
                       f"a forwarder or mailing list ({s.messages:,} messages)",
                       "nothing to do if you know it; declare it if it is yours",
                       "unknown", s.name, s.messages)
    if not declared:
        return Verdict("info", "unknown.undeclared",
                       f"source {who}: {s.messages:,} messages ({domain} is not declared in "
                       "the config, so sources cannot be classified)", "", "unknown", s.name,
                       s.messages)
    result = "fail" if not s.dmarc_pass else "partly pass"
    return Verdict("warning", "unknown.sends_as_you",
                   f"unknown source {who} sends as you: spoofing or a forgotten service "
                   f"({s.messages:,} messages, DMARC {result})",
                   "if it is yours, declare it (dns.relays or dns.spf_extra); if not, "
                   "p=reject stops it", "unknown", s.name, s.messages)


def tls_verdicts(domain: str, rows: list[tuple[Any, ...]]) -> tuple[list[dict[str, Any]],
                                                                   list[Verdict]]:
    """Rows are store.tls_rows(): (day, org, policy_type, mx, result, sessions, reason)."""
    table: dict[tuple[str, str], dict[str, Any]] = {}
    for _day, org, ptype, mx, result, n, reason in rows:
        key = (mx or "", result)
        e = table.setdefault(key, {"mx": mx or "", "result": result, "sessions": 0,
                                   "policy_type": ptype, "reporters": set(), "reasons": set()})
        e["sessions"] += int(n)
        e["reporters"].add(org)
        if reason:
            e["reasons"].add(reason)
    entries = sorted(table.values(), key=lambda e: (e["result"] == "success", e["mx"],
                                                    e["result"]))
    verdicts = []
    for e in entries:
        e["reporters"] = sorted(e["reporters"])
        e["reasons"] = sorted(e["reasons"])[:5]
        if e["result"] == "success":
            continue
        mx = e["mx"] or domain
        fix = TLS_FIXES.get(e["result"], "see RFC 8460 section 4.3 for {result}").format(
            mx=mx, domain=domain, result=e["result"])
        where = f"to {e['mx']}" if e["mx"] else f"for {domain}"
        verdicts.append(Verdict(
            "error", "tls.failures", f"TLS: {e['sessions']:,} failed sessions {where} "
            f"({e['result']}), reported by {', '.join(e['reporters'])}", fix, "tls", mx,
            e["sessions"]))
    return entries, verdicts
