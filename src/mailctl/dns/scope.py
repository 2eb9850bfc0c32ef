"""Which records of a zone are mailctl's: the octoDNS processor that scopes a plan.

mailctl manages mail records only. Three rules, applied to the zone read from
the DNS host before octoDNS diffs it against the records the config asks for:

1. A (name, type) the config asks for is managed. If it is a TXT set shared with
   other services (the apex holds SPF *and* a site verification), only the mail
   values are mailctl's: every other value is copied into the desired set byte
   for byte, so the update that replaces the set writes it back unchanged.
2. A record that a known provider or relay profile would publish for this
   domain (`records.known_records`), and that the config no longer asks for, is
   one mailctl once published: it stays visible so the plan deletes it (the old
   relay's DKIM records after a relay switch). Deletes need confirmation.
3. Everything else is invisible to the plan: the web server's A record, an MX
   under a sub-name, NS and SOA, foreign TXT names. octoDNS never sees them, so it
   can neither update nor delete them.

No marker record and no state file are needed: the profiles know every name
they publish. The price is that a record at such a name, of the same type and
shape, is taken for a mail record; the plan shows it with the profile that
claims it before anything is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from octodns.processor.base import BaseProcessor
from octodns.record import Record as OctoRecord

from mailctl.dns.records import Record

MANAGED_TYPES = frozenset({"MX", "TXT", "CNAME", "SRV"})
# TXT values that are mail records wherever they appear at a name mailctl manages
MAIL_TXT_PREFIXES = ("v=spf1", "v=dmarc1", "v=stsv1", "v=tlsrptv1", "v=dkim1")


def unescape(value: str) -> str:
    """An octoDNS TXT value as the text a resolver returns (octoDNS escapes `;`)."""
    return value.replace("\\;", ";")


def escape(value: str) -> str:
    """A TXT value as octoDNS stores it (`;` escaped)."""
    return value.replace(";", "\\;")


def value_text(rtype: str, value: Any) -> str:
    """One octoDNS value as zone-file-like text (TXT unescaped, names with their dot)."""
    if rtype == "MX":
        return f"{value.preference} {value.exchange}"
    if rtype == "SRV":
        return f"{value.priority} {value.weight} {value.port} {value.target}"
    if rtype == "TXT":
        return unescape(str(value))
    return str(value)


def raw_values(record: OctoRecord) -> list[Any]:
    values = getattr(record, "values", None)
    return list(values) if values is not None else [record.value]


def record_values(record: OctoRecord) -> list[str]:
    return sorted(value_text(record._type, v) for v in raw_values(record))


def _norm(rtype: str, text: str) -> str:
    out = " ".join(text.split()).lower()
    return out.rstrip(".") if rtype in ("CNAME", "SRV", "MX") else out


@dataclass
class ScopeNotes:
    """What the scope did, for the plan people read."""

    kept: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # foreign values kept
    formerly: dict[tuple[str, str], str] = field(default_factory=dict)  # (name, type) -> profile
    foreign: int = 0  # records left alone entirely
    managed_existing: int = 0


class MailScope(BaseProcessor):  # type: ignore[misc]
    """Hide foreign records, keep foreign values of shared TXT sets, expose stale mail records."""

    def __init__(self, zone: str, known: list[Record], txt_prefixes: tuple[str, ...]) -> None:
        super().__init__("mailctl-scope")
        self.zone = zone.rstrip(".")
        self.notes = ScopeNotes()
        self.txt_prefixes = tuple(p.lower() for p in (*MAIL_TXT_PREFIXES, *txt_prefixes) if p)
        self.known: dict[tuple[str, str], list[Record]] = {}
        for rec in known:
            self.known.setdefault((self.relative(rec.name), rec.rtype), []).append(rec)

    def relative(self, fqdn: str) -> str:
        fqdn = fqdn.rstrip(".").lower()
        return "" if fqdn == self.zone else fqdn.removesuffix("." + self.zone)

    def mail_txt(self, name: str, text: str) -> bool:
        lower = text.strip().lower()
        if lower.startswith(self.txt_prefixes):
            return True
        # a DKIM key without v=DKIM1 (k=rsa; p=...) at a selector name
        return "._domainkey" in f".{name}" and "p=" in lower.replace(" ", "")

    def _claimed_by(self, record: OctoRecord) -> str | None:
        """The known profile that would have published `record`, if any."""
        for rec in self.known.get((record.name, record._type), []):
            found = record_values(record)
            if record._type == "TXT":
                if any(self.mail_txt(record.name, v) for v in found) and (
                        rec.value is None or rec.purpose != "verification"
                        or rec.value in found):
                    return rec.source
                continue
            if rec.value is None or _norm(record._type, rec.value) in {
                    _norm(record._type, v) for v in found}:
                return rec.source
        return None

    def process_source_and_target_zones(self, desired: Any, existing: Any, target: Any,
                                        lenient: bool = False) -> tuple[Any, Any]:
        wanted = {(r.name, r._type): r for r in desired.records}
        for record in list(existing.records):
            key = (record.name, record._type)
            if record._type not in MANAGED_TYPES:
                existing.remove_record(record)
                continue
            mine = wanted.get(key)
            source = None if mine is not None else self._claimed_by(record)
            if mine is None and source is None:
                existing.remove_record(record)
                self.notes.foreign += 1
                continue
            self.notes.managed_existing += 1
            if source is not None:
                self.notes.formerly[key] = source
            if record._type != "TXT":
                continue
            foreign = [v for v in raw_values(record)
                       if not self.mail_txt(record.name, unescape(str(v)))]
            if not foreign:
                continue
            self.notes.kept[key] = sorted(unescape(str(v)) for v in foreign)
            own = list(mine.values) if mine is not None else []
            merged = sorted({*map(str, own), *map(str, foreign)})
            data = {"ttl": mine.ttl if mine is not None else record.ttl, "type": "TXT",
                    "values": merged}
            desired.add_record(OctoRecord.new(desired, record.name, data, lenient=True),
                               replace=True, lenient=True)
        return desired, existing
