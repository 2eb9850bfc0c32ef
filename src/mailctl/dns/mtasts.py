"""MTA-STS (RFC 8461) and TLS-RPT (RFC 8460): generate, fetch, check.

Senders cache a policy for max_age and refetch only when the TXT id changes,
so the id here is a hash of the policy text: it changes exactly when the
policy does, and a published id that does not match the served policy proves
someone edited the policy without bumping the id.

The policy is fetched by connecting to the address *our* resolver returns
(with SNI and Host set to the policy host), so tests can serve it from a local
HTTPS server with a test CA; the system resolver is never involved.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailctl.dns.context import Context, HttpsOptions
from mailctl.dns.findings import Severity as S
from mailctl.dns.stspolicy import MAX_AGE_LIMIT, parse_policy, policy_id

if TYPE_CHECKING:
    from mailctl.dns.resolver import DnsClient

MIN_SENSIBLE_AGE = 86400
MAX_BODY = 64 * 1024
_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_HASH_ID = re.compile(r"^[0-9a-f]{24}$")


def mx_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("*."):
        head, _, rest = host.partition(".")
        return bool(head) and rest == pattern[2:]
    return pattern == host


@dataclass
class Fetched:
    status: int = 0
    content_type: str = ""
    location: str = ""
    body: str = ""
    error: str | None = None
    unknown: bool = False  # DNS could not tell where to connect


async def fetch_policy(client: DnsClient, domain: str, https: HttpsOptions) -> Fetched:
    host = f"mta-sts.{domain}"
    answer = await client.query(host, "A")
    if answer.outcome.failed:
        return Fetched(error=answer.describe(), unknown=True)
    if not answer.ok:
        answer = await client.query(host, "AAAA")
        if not answer.ok:
            return Fetched(error=f"{host} has no address", unknown=answer.outcome.failed)
    address = answer.rdatas[0].address
    ctx = https.ssl_context or ssl.create_default_context()
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(address, https.port, ssl=ctx, server_hostname=host),
            https.timeout)
    except ssl.SSLCertVerificationError as exc:  # senders would refuse it too: wrong
        return Fetched(error=f"https://{host}/ ({address}): {exc}")
    except (OSError, TimeoutError, ssl.SSLError) as exc:  # could not tell: not the policy's fault
        return Fetched(error=f"https://{host}/ ({address}): {exc or type(exc).__name__}",
                       unknown=True)
    try:
        writer.write((f"GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: {host}\r\n"
                      "User-Agent: mailctl\r\nConnection: close\r\n\r\n").encode())
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(MAX_BODY + 8192), https.timeout)
    except (OSError, TimeoutError, ssl.SSLError) as exc:
        return Fetched(error=f"https://{host}/: {exc or type(exc).__name__}", unknown=True)
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return Fetched(error=f"https://{host}/: not an HTTP response")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    if "chunked" in headers.get("transfer-encoding", ""):
        body = _dechunk(body)
    return Fetched(status, headers.get("content-type", ""), headers.get("location", ""),
                   body[:MAX_BODY].decode("utf-8", "replace"))


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


async def check_mta_sts(ctx: Context, live_mx: list[str] | None) -> None:
    name = f"_mta-sts.{ctx.domain}"
    managed = ctx.spec.mta_sts_mode is not None
    answer = await ctx.client.query(name, "TXT")
    if answer.outcome.failed:
        ctx.unknown("mta_sts.unknown", answer)
        return
    records = [t for t in answer.texts() if t.lower().startswith("v=stsv1")]
    expected = next((r.value for r in ctx.expected if r.name == name), None)
    if not records:
        if managed:
            ctx.add("mta_sts.missing", S.ERROR, name, "no MTA-STS record, though configured",
                    expected=expected, fix=f"publish TXT {name} (mailctl dns mta-sts prints it)")
        return
    if len(records) > 1:
        ctx.add("mta_sts.multiple", S.ERROR, name, "several MTA-STS records: senders ignore "
                "MTA-STS", found=" | ".join(records), fix="keep exactly one")
        return
    tags = {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in records[0].split(";"))}
    txt_id = tags.get("id", "")
    if not _ID.match(txt_id):
        ctx.add("mta_sts.txt_syntax", S.ERROR, name, "id= must be 1-32 letters or digits",
                found=records[0], expected=expected, fix="publish v=STSv1; id=<letters/digits>")
    fetched = await fetch_policy(ctx.client, ctx.domain, ctx.https)
    url = f"https://mta-sts.{ctx.domain}/.well-known/mta-sts.txt"
    if fetched.error:
        if fetched.unknown:
            ctx.add("mta_sts.fetch_unknown", S.UNKNOWN, url, "could not tell whether the policy "
                    f"is right: it could not be fetched ({fetched.error})",
                    fix="retry later; if it persists, check that the policy host is up")
        else:
            ctx.add("mta_sts.fetch_failed", S.ERROR, url,
                    f"policy could not be fetched: {fetched.error}",
                    fix="serve the policy over HTTPS with a certificate valid for mta-sts."
                    f"{ctx.domain}")
        return
    if fetched.status != 200:
        redirect = 300 <= fetched.status < 400
        ctx.add("mta_sts.redirect" if redirect else "mta_sts.fetch_failed", S.ERROR, url,
                f"HTTP {fetched.status}" + (f" to {fetched.location}: senders do not follow "
                                            "redirects" if redirect else ""),
                fix="answer 200 with the policy at exactly this URL")
        return
    if not fetched.content_type.lower().startswith("text/plain"):
        ctx.add("mta_sts.content_type", S.WARNING, url, "the policy should be text/plain",
                found=fetched.content_type or None, expected="text/plain")
    _check_policy(ctx, url, fetched.body, txt_id, live_mx)


def _check_policy(ctx: Context, url: str, body: str, txt_id: str,
                  live_mx: list[str] | None) -> None:
    policy = parse_policy(body)
    for error in policy.errors:
        ctx.add("mta_sts.policy_syntax", S.ERROR, url, f"policy error: {error}", found=body)
    if policy.mode == "none":
        ctx.add("mta_sts.mode_none", S.WARNING, url, "mode: none disables MTA-STS",
                found=body, fix="use testing, then enforce (or remove MTA-STS entirely)")
    elif policy.mode == "testing":
        ctx.add("mta_sts.mode_testing", S.INFO, url, "mode: testing only reports failures")
    wanted = ctx.spec.mta_sts_mode
    if wanted and policy.mode and policy.mode != wanted:
        ctx.add("mta_sts.mode_mismatch", S.WARNING, url, f"mode: {policy.mode}, configured "
                f"{wanted}", found=policy.mode, expected=wanted, fix="publish the configured mode")
    if policy.max_age is not None and policy.max_age > MAX_AGE_LIMIT:
        ctx.add("mta_sts.max_age", S.ERROR, url, f"max_age {policy.max_age} exceeds "
                f"{MAX_AGE_LIMIT} (one year)", found=str(policy.max_age),
                expected=str(ctx.spec.mta_sts_max_age), fix="lower max_age")
    elif policy.max_age is not None and policy.max_age < MIN_SENSIBLE_AGE and policy.mode != "none":
        ctx.add("mta_sts.max_age_short", S.WARNING, url, f"max_age {policy.max_age} is under a "
                "day: a downgrade attack only needs to wait it out", found=str(policy.max_age),
                expected=str(ctx.spec.mta_sts_max_age), fix="use a week or more")
    if live_mx is not None and policy.mode in ("enforce", "testing"):
        uncovered = [h for h in live_mx if not any(mx_matches(p, h) for p in policy.mx)]
        if uncovered:
            sev = S.ERROR if policy.mode == "enforce" else S.WARNING
            ctx.add("mta_sts.mx_uncovered", sev, url, "MX hosts not in the policy: senders "
                    + ("refuse to deliver to them" if sev is S.ERROR else "report failures"),
                    found=", ".join(uncovered), expected="mx: " + ", ".join(policy.mx),
                    fix="add mx: lines for them, then change the TXT id")
    if _HASH_ID.match(txt_id) and txt_id != policy_id(body):
        ctx.add("mta_sts.id_stale", S.ERROR, f"_mta-sts.{ctx.domain}", "the policy changed but "
                "the TXT id did not: senders keep using their cached policy",
                found=f"id={txt_id}", expected=f"id={policy_id(body)}",
                fix="publish the new id (mailctl dns mta-sts prints it)")


async def check_tls_rpt(ctx: Context) -> None:
    name = f"_smtp._tls.{ctx.domain}"
    answer = await ctx.client.query(name, "TXT")
    if answer.outcome.failed:
        ctx.unknown("tls_rpt.unknown", answer)
        return
    records = [t for t in answer.texts() if t.lower().startswith("v=tlsrptv1")]
    expected = next((r.value for r in ctx.expected if r.name == name), None)
    if not records:
        if expected:
            ctx.add("tls_rpt.missing", S.WARNING, name, "no TLS-RPT record: TLS delivery "
                    "failures go unreported", expected=expected, fix=f'add TXT "{expected}"')
        return
    if len(records) > 1:
        ctx.add("tls_rpt.multiple", S.ERROR, name, "several TLS-RPT records are invalid",
                found=" | ".join(records), fix="keep exactly one")
        return
    match = re.match(r"^v=TLSRPTv1;\s*rua=([^;]+);?\s*$", records[0], re.I)
    uris = [u.strip() for u in match.group(1).split(",")] if match else []
    if not uris or not all(re.match(r"^(mailto:[^@\s]+@[^@\s]+|https://\S+)$", u) for u in uris):
        ctx.add("tls_rpt.syntax", S.ERROR, name, "TLS-RPT record does not parse",
                found=records[0], expected=expected,
                fix='publish "v=TLSRPTv1; rua=mailto:address"')
