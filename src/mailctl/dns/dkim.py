"""DKIM: the selectors the profiles promise, keys that parse and are strong enough.

DNS cannot list selectors, so only the provider and relay profiles (or the
user's config) say where to look; that is what lets mailctl catch a missing
key that checkers without a profile cannot see.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import dataclass

from mailctl.dns.context import Context
from mailctl.dns.findings import Severity as S
from mailctl.dns.records import Record, txt_chunks

MIN_BITS = 1024  # RFC 8301: verifiers must reject smaller RSA keys
GOOD_BITS = 2048  # RFC 8301: signers should use at least this


@dataclass(frozen=True, slots=True)
class KeyInfo:
    algorithm: str  # "rsa" | "ed25519"
    bits: int
    revoked: bool = False
    error: str | None = None


def parse_tags(text: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = "".join(value.split())
    return tags


def inspect_key(record: str) -> KeyInfo:
    """Algorithm and size of the key in a DKIM TXT record, or why it is unusable."""
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    tags = parse_tags(record)
    algorithm = tags.get("k", "rsa").lower()
    if "v" in tags and not record.strip().lower().startswith("v=dkim1"):
        return KeyInfo(algorithm, 0, error="v=DKIM1 must be the first tag")
    if "p" not in tags:
        return KeyInfo(algorithm, 0, error="no p= tag (public key)")
    if tags["p"] == "":
        return KeyInfo(algorithm, 0, revoked=True)
    try:
        der = base64.b64decode(tags["p"], validate=True)
    except (binascii.Error, ValueError):
        return KeyInfo(algorithm, 0, error="p= is not valid base64")
    if algorithm == "ed25519":
        if len(der) != 32:
            return KeyInfo(algorithm, 0, error=f"an Ed25519 key is 32 bytes, got {len(der)}")
        ed25519.Ed25519PublicKey.from_public_bytes(der)
        return KeyInfo(algorithm, 256)
    if algorithm != "rsa":
        return KeyInfo(algorithm, 0, error=f"unknown key type k={algorithm}")
    try:
        key = load_der_public_key(der)
    except ValueError:
        return KeyInfo(algorithm, 0, error="p= does not decode to a public key")
    if not isinstance(key, rsa.RSAPublicKey):
        return KeyInfo(algorithm, 0, error="k=rsa but p= holds a non-RSA key")
    return KeyInfo(algorithm, key.key_size)


async def check_dkim(ctx: Context) -> None:
    await asyncio.gather(*(_check_selector(ctx, rec) for rec in ctx.expected_of("dkim")))


async def _check_selector(ctx: Context, rec: Record) -> None:
    name = rec.name
    # one TXT query: a resolver returns the CNAME chain with the answer, so a separate
    # CNAME query would only repeat what is already there
    txt_answer = await ctx.client.query(name, "TXT")
    if txt_answer.outcome.failed:
        ctx.unknown("dkim.unknown", txt_answer)
        return
    target = f"{txt_answer.cnames[0]}." if txt_answer.cnames else None
    missing = S.INFO if rec.optional else S.ERROR  # a relay's record the config did not declare
    if rec.rtype == "CNAME":
        if target is None and not txt_answer.ok:
            ctx.add("dkim.missing", missing, name,
                    f"DKIM selector {rec.selector} ({rec.source}) is not published",
                    expected=f"CNAME {rec.value or '<from your provider>'}",
                    fix=f"add CNAME {name} -> {rec.value or 'the target your provider shows'}")
            return
        if target is None:
            ctx.add("dkim.not_delegated", S.WARNING, name, "a key copy is published as TXT "
                    "where the provider expects a CNAME: it goes stale when they rotate keys",
                    expected=f"CNAME {rec.value}", fix=f"replace the TXT by CNAME {rec.value}")
        elif rec.value and target != rec.value.lower():
            ctx.add("dkim.cname_mismatch", S.ERROR, name, "DKIM CNAME points elsewhere",
                    found=f"CNAME {target}", expected=f"CNAME {rec.value}",
                    fix=f"change the CNAME target to {rec.value}")
        if target is not None and not txt_answer.ok:
            ctx.add("dkim.cname_broken", S.ERROR, name,
                    f"CNAME {target} leads to no key ({txt_answer.outcome.value})",
                    found=f"CNAME {target}", expected=f"CNAME {rec.value}",
                    fix="check the target with your provider; the key is not published there")
            return
    elif not txt_answer.ok:
        ctx.add("dkim.missing", missing, name,
                f"DKIM selector {rec.selector} ({rec.source}) is not published",
                expected=rec.zone_value() or "TXT v=DKIM1; k=rsa; p=<public key>",
                fix=f"add TXT {name} with the public key"
                + (" (mailctl dkim generate prints it)" if ctx.provider.self_hosted else ""))
        return
    _check_key(ctx, rec, txt_answer.texts())


def _check_key(ctx: Context, rec: Record, texts: list[str]) -> None:
    name = rec.name
    keys = [t for t in texts if "p=" in t.replace(" ", "") or t.lower().startswith("v=dkim1")]
    if len(texts) > 1 and len(keys) < len(texts):
        ctx.add("dkim.split_records", S.ERROR, name, "the key is spread over several TXT "
                "records; verifiers read one record", found=" | ".join(texts),
                fix="publish one TXT record; split only into strings of ≤255 bytes inside it")
    if len(keys) > 1:
        ctx.add("dkim.multiple", S.ERROR, name, f"{len(keys)} DKIM records at one selector",
                found=" | ".join(keys), fix="keep exactly one")
    if not keys:
        ctx.add("dkim.key_invalid", S.ERROR, name, "the TXT record is not a DKIM key",
                found=" | ".join(texts), fix="publish v=DKIM1; k=rsa; p=<public key>")
        return
    info = inspect_key(keys[0])
    if info.revoked:
        ctx.add("dkim.revoked", S.ERROR, name, "empty p=: the key is revoked, mail signed with "
                "it fails DKIM", found=keys[0], fix="publish the current public key")
    elif info.error:
        ctx.add("dkim.key_invalid", S.ERROR, name, f"the key does not parse: {info.error}",
                found=keys[0], expected=rec.value,
                fix="copy the key again; a space or quote inserted at a 255-byte split "
                "corrupts it")
    elif info.algorithm == "rsa" and info.bits < MIN_BITS:
        ctx.add("dkim.key_weak", S.ERROR, name, f"RSA key of {info.bits} bits: verifiers must "
                f"reject keys under {MIN_BITS} bits (RFC 8301)", found=f"{info.bits} bits",
                expected=f"≥ {GOOD_BITS} bits", fix="generate a 2048-bit key and rotate")
    elif info.algorithm == "rsa" and info.bits < GOOD_BITS:
        ctx.add("dkim.key_small", S.WARNING, name, f"RSA key of {info.bits} bits, "
                f"{GOOD_BITS} recommended (RFC 8301)", found=f"{info.bits} bits",
                expected=f"{GOOD_BITS} bits", fix="generate a 2048-bit key and rotate")
    published = parse_tags(keys[0]).get("p")
    wanted = parse_tags(rec.value).get("p") if rec.value and rec.rtype == "TXT" else None
    if wanted and published and wanted != published:
        ctx.add("dkim.key_mismatch", S.ERROR, name, "the published key is not the one the "
                "mail server signs with", found=keys[0], expected=rec.value,
                fix="publish the key from your server (or the one in mailctl.yaml)")


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    selector: str
    domain: str
    private_pem: str
    txt_value: str
    bits: int

    @property
    def name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def zone_line(self, ttl: int = 3600) -> str:
        """One RR, the key split into ≤255-byte strings (never two RRs)."""
        chunks = " ".join(f'"{c}"' for c in txt_chunks(self.txt_value))
        return f"{self.name}. {ttl} IN TXT ( {chunks} )"


def generate_key(domain: str, selector: str, *, bits: int = 2048,
                 algorithm: str = "rsa") -> GeneratedKey:
    """A new key pair; the private half never leaves the returned object."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    private: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
        raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                                serialization.PublicFormat.Raw)
        bits = 256
    else:
        if bits < MIN_BITS:
            raise ValueError(f"RSA keys under {MIN_BITS} bits are rejected by verifiers")
        private = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        raw = private.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    value = f"v=DKIM1; k={algorithm}; p={base64.b64encode(raw).decode()}"
    return GeneratedKey(selector, domain, pem, value, bits)
