"""DNSSEC status as the resolver reports it: validated or not, from the AD bit.

Only information, never a failure: most mail domains are unsigned, and many
resolvers do not validate. It matters because without DNSSEC a sender cannot
use DANE for the MX, and forged MX/TXT answers go unnoticed. The check reads
the AD bit of the MX answer the MX check already fetched (every query asks for
it, RFC 6840 §5.7), so it costs no query at all. That is also its limit: an
answer without AD means "unsigned, or the resolver does not validate", and the
two are not told apart (a DNSKEY query would, at the price of one more query
on every domain's critical path). A *bogus* zone comes back as SERVFAIL from a
validating resolver and shows up as `unknown` findings.
"""

from __future__ import annotations

from mailctl.dns.context import Context
from mailctl.dns.findings import Severity as S
from mailctl.dns.resolver import Answer

AD = 0x0020  # dns.flags.AD


def verdict(mx: Answer) -> tuple[str, str, str | None] | None:
    """(code, message, fix) for the domain, None when the resolver could not tell."""
    if mx.outcome.failed:
        return None
    if mx.flags & AD:
        return ("dnssec.validated", "answers are DNSSEC-signed and the resolver validated them",
                None)
    return ("dnssec.not_validated", "answers are not DNSSEC-validated: the zone is unsigned, "
            "or the resolver does not validate; unsigned, DANE cannot protect mail to the MX "
            "and forged answers go unnoticed",
            "optional: sign the zone at your DNS host and publish the DS at the registrar; "
            "check through a validating --resolver to know which case it is")


async def check_dnssec(ctx: Context) -> None:
    result = verdict(await ctx.client.query(ctx.domain, "MX"))
    if result is not None:  # a failed MX lookup is already reported by the MX check
        code, message, fix = result
        ctx.add(code, S.INFO, ctx.domain, message, fix=fix)
