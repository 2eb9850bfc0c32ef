"""Invite URLs and the two QR payloads Delta Chat understands.

`DCACCOUNT:<url>` makes the app POST to the URL and log in with what comes
back. `DCLOGIN:<addr>?p=..&v=1&ih=..` carries a finished login, so an admin
can hand an account over without ever typing or reading its password.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from mailctl.accounts.settings import ServerEndpoint
    from mailctl.accounts.store import Token
    from mailctl.providers.base import Provider


def endpoint(public_url: str | None, domain: str) -> str:
    """Where the app POSTs; Delta Chat only accepts https, hence the default."""
    return public_url or f"https://{domain}/new_email"


def invite_url(public_url: str | None, token: Token) -> str:
    base = endpoint(public_url, token.domain)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}t={quote(token.secret, safe='')}&n={quote(token.name, safe='')}"


def dcaccount(url: str) -> str:
    return f"DCACCOUNT:{url}"


def dclogin(address: str, password: str, imap: ServerEndpoint | None,
            smtp: ServerEndpoint | None, accept_invalid: bool = False) -> str:
    params: list[tuple[str, str]] = [("p", password), ("v", "1")]
    if imap is not None:
        params += [("ih", imap.host), ("ip", str(imap.port)), ("is", imap.security)]
    if smtp is not None:
        params += [("sh", smtp.host), ("sp", str(smtp.port)), ("ss", smtp.security)]
    if accept_invalid:
        params.append(("ic", "2"))  # core: AcceptInvalidCertificates
    query = urlencode(params, quote_via=quote, safe="")
    return f"DCLOGIN:{quote(address, safe='@')}?{query}"


def sandbox_login(provider: Provider) -> dict[str, Any] | None:
    """The sandbox serving a dms folder: its IMAPS and submission ports, self-signed."""
    if provider.type_name != "dms":
        return None
    from mailctl.accounts.settings import ServerEndpoint
    from mailctl.sandbox.state import SandboxError, load_info, marker_entries

    directory = Path(getattr(provider, "directory")).resolve()  # noqa: B009 - dms only
    for state_dir in marker_entries(directory):
        try:
            info = load_info(state_dir)
        except SandboxError:
            continue
        if info is None or Path(info.dms_dir).resolve() != directory:
            continue
        return {"imap": ServerEndpoint(host=info.host, port=info.ports.imaps, security="ssl"),
                "smtp": ServerEndpoint(host=info.host, port=info.ports.submission,
                                       security="starttls"),
                "accept_invalid": True}
    return None


def render(payload: str, png: Path | None = None, svg: Path | None = None,
           out: TextIO | None = None) -> list[Path]:
    """Write PNG/SVG files, or print the code in the terminal when neither is asked for."""
    import segno

    code = segno.make(payload, error="m", micro=False)
    written: list[Path] = []
    if png is not None:
        code.save(str(png), kind="png", scale=8, border=4, light="white")
        written.append(png)
    if svg is not None:
        code.save(str(svg), kind="svg", scale=8, border=4, light="white")
        written.append(svg)
    if not written:
        code.terminal(out=out or sys.stdout, compact=True, border=2)
    return written
