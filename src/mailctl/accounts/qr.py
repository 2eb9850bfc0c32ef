"""Invite URLs and the two QR payloads Delta Chat understands.

`DCACCOUNT:<url>` makes the app POST to the URL and log in with what comes
back. `DCLOGIN:<addr>?p=..&v=1&ih=..` carries a finished login, so an admin
can hand an account over without ever typing or reading its password.

Both hold a secret (the token's, the password), so their files are written
0600 and atomically, and a command checks where they go before it makes
anything (`check_output`).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote, urlencode

if TYPE_CHECKING:
    from mailctl.accounts.model import Token
    from mailctl.accounts.settings import ServerEndpoint
    from mailctl.providers.base import Provider


def endpoint(public_url: str | None, domain: str) -> str:
    """Where the app POSTs; Delta Chat only accepts https, hence the default."""
    return public_url or f"https://{domain}/new_email"


def invite_url(public_url: str | None, token: Token, secret: str | None = None) -> str:
    """`secret`: a new one not yet in the store; else the token's stored one."""
    secret = secret or token.secret
    if secret is None:
        raise ValueError(f"token {token.name}: its secret is not stored")
    return invite_url_for(public_url, token.domain, token.name, secret)


def invite_url_for(public_url: str | None, domain: str, name: str, secret: str) -> str:
    base = endpoint(public_url, domain)
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}t={quote(secret, safe='')}&n={quote(name, safe='')}"


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


def check_output(path: Path) -> str | None:
    """Why a file cannot be written at `path` (checked before any side effect), or None."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        return f"{path} is a directory"
    if not parent.is_dir():
        return f"directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    return None


def render(payload: str, png: Path | None = None, svg: Path | None = None,
           out: TextIO | None = None) -> list[Path]:
    """Write PNG/SVG files (0600, atomically), or print the code in the terminal when
    neither is asked for."""
    import segno

    from mailctl.util.atomic import atomic_write

    code = segno.make(payload, error="m", micro=False)
    written: list[Path] = []
    for path, kind in ((png, "png"), (svg, "svg")):
        if path is None:
            continue
        buf = io.BytesIO()
        code.save(buf, kind=kind, scale=8, border=4, light="white")
        atomic_write(path, buf.getvalue(), mode=0o600)
        written.append(path)
    if not written:
        code.terminal(out=out or sys.stdout, compact=True, border=2)
    return written


def remove(paths: list[Path]) -> None:
    """Take back files written for something that was then not made."""
    for path in paths:
        with contextlib.suppress(OSError):
            path.unlink()
