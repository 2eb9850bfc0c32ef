"""Skip re-reading a zone that cannot have changed: the no-change plan of 100 domains.

Why: a `dns plan` with nothing to do is what CI and monitors run most, and
reading 100 zones by AXFR and parsing them with octoDNS took 2-4 s on this
machine (measured, loaded), where asking 100 SOA serials takes a few ms each.

What is remembered, per zone, after a plan found *no change*: the zone's SOA
serial at the host, keyed by a hash of everything the comparison depended on
(host, class, settings with references unresolved, zone, the desired records,
the records known profiles would publish). A later plan asks the host for the
SOA serial first; the same serial under the same key means the same zone
compared against the same records, so the answer is again "no change". Every
change to a zone on a DNS server bumps its serial (RFC 1996; Knot and BIND do
for dynamic updates), any config change changes the key, and a host that does
not serve SOA over DNS (cloud APIs) is never cached. A mismatch, a failed SOA
query or `MAILCTL_NO_CACHE=1` means the full read, as without the cache.

The file holds no secrets; it is written 0600 in a 0700 `.mailctl/` directory
next to the config, atomically, and a damaged file is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

NAME = "dns-clean-zones.json"
_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get("MAILCTL_NO_CACHE", "") in ("", "0")


def key(parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def soa_serial(host: str, port: int, zone: str, timeout: float = 2.0) -> int | None:
    """The zone's serial as `host` serves it, None when it cannot tell."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode
    import dns.rdatatype

    query = dns.message.make_query(zone.rstrip(".") + ".", dns.rdatatype.SOA)
    try:
        resp = dns.query.udp(query, host, port=port, timeout=timeout)
    except (dns.exception.DNSException, OSError):
        return None
    if resp.rcode() != dns.rcode.NOERROR or not (resp.flags & 0x0400):  # AA: the zone's own
        return None
    for rrset in resp.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


class CleanZones:
    """zone key -> [serial, managed, foreign] of the last plan that found nothing to do."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ".mailctl" / NAME
        self.data: dict[str, list[int]] = {}
        self.dirty = False
        try:
            loaded = json.loads(self.path.read_text())
            if isinstance(loaded, dict):
                self.data = {k: v for k, v in loaded.items()
                             if isinstance(v, list) and len(v) == 3}
        except (OSError, ValueError):
            pass

    def get(self, zone_key: str, serial: int) -> tuple[int, int] | None:
        entry = self.data.get(zone_key)
        if entry is None or entry[0] != serial:
            return None
        return entry[1], entry[2]

    def put(self, zone_key: str, serial: int, managed: int, foreign: int) -> None:
        with _lock:
            self.data[zone_key] = [serial, managed, foreign]
            self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        from mailctl.util.atomic import atomic_write
        from mailctl.util.private import private_dir

        try:
            private_dir(self.path.parent)
            atomic_write(self.path, json.dumps(self.data, sort_keys=True), mode=0o600)
        except OSError:
            pass  # a cache: never fail a plan for it
        self.dirty = False
