"""How a sync signs in to an IMAP account: the user's password, a master user, or OAuth2.

Whole-domain work (backup, restore, move) reads and writes every mailbox of a
domain, and collecting every user's password is the step operators dread. So a
store may sign in as an administrator instead, in whichever way the server
offers (verified against Dovecot, ../shared/notes/domain-ops.md):

- `MasterAuth`: a Dovecot-style master user, either as the login name
  `alice@example.org*admin` (docker-mailserver, mailcow, the sandbox) or as SASL
  PLAIN with an authorization identity (authzid `alice@...`, authcid `admin`),
  which servers without a separator setting understand too;
- `OAuth2Auth`: XOAUTH2 or OAUTHBEARER with a bearer token per user, refreshed
  before it expires and once more if the server refuses it, so a copy that runs
  longer than a token lives opens its later sessions with a fresh one (Dovecot,
  Gmail and Microsoft 365 check the token when a session signs in);
- `PasswordAuth`: plain LOGIN with the user's own (or a temporary) password.

Every secret stays a `Secret` until the bytes go on the wire; no message built
here holds one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from mailctl.secret import Secret
from mailctl.sync.imapwire import Connection, ImapError
from mailctl.sync.model import SyncError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol

    class Auth(Protocol):
        """Signs `user` in on a fresh connection, or raises ImapError."""

        label: str  # how it is shown: never a secret

        def login(self, conn: Connection, user: str) -> None: ...
else:
    Auth = object


class PasswordAuth:
    label = "password"

    def __init__(self, password: Secret) -> None:
        self.password = password

    def login(self, conn: Connection, user: str) -> None:
        conn.login(user, self.password)


class MasterAuth:
    """`form`: "separator" (LOGIN `user*master`) or "authzid" (SASL PLAIN)."""

    def __init__(self, master: str, password: Secret, form: str = "separator",
                 separator: str = "*") -> None:
        if form not in ("separator", "authzid"):
            raise ValueError(f"master login form {form!r} (expected separator or authzid)")
        self.master, self.password, self.form, self.separator = master, password, form, separator
        self.label = f"master user {master} ({form})"

    def login(self, conn: Connection, user: str) -> None:
        if self.form == "separator":
            try:
                conn.login(f"{user}{self.separator}{self.master}", self.password)
            except ImapError:
                raise ImapError(f"{conn.host}: login failed for {user} as master user "
                                f"{self.master}") from None
            return
        ok, said = conn.authenticate("PLAIN", b"\0".join((
            user.encode(), self.master.encode(), self.password.reveal().encode())))
        if not ok:
            raise ImapError(f"{conn.host}: login failed for {user} as master user "
                            f"{self.master} (SASL PLAIN with authzid): {said}")


class TokenError(SyncError):
    """The token endpoint refused or could not be reached; the message holds no secret."""


class RefreshTokens:
    """Access tokens per user from the OAuth2 token endpoint (RFC 6749 section 6: the
    refresh_token grant), cached until shortly before they expire. A refresh token the
    endpoint rotates is handed to `on_rotate` (the caller stores it, 0600), so the next
    run does not start with a spent one. Thread-safe: folder workers and mailboxes share
    one source."""

    def __init__(self, token_url: str, client_id: str, client_secret: Secret | None,
                 refresh: dict[str, Secret], *, scope: str | None = None,
                 on_rotate: Callable[[str, Secret], None] | None = None,
                 timeout: float = 30.0) -> None:
        self.token_url, self.client_id, self.client_secret = token_url, client_id, client_secret
        self.refresh, self.scope, self.on_rotate, self.timeout = refresh, scope, on_rotate, timeout
        self._cache: dict[str, tuple[Secret, float, float]] = {}  # token, expiry, lifetime
        self._lock = threading.Lock()
        self.issued = 0  # access tokens fetched (tests and status show refreshes)

    def has(self, user: str) -> bool:
        return user in self.refresh

    def token(self, user: str) -> Secret:
        with self._lock:
            got = self._cache.get(user)
            if got is not None:
                tok, expiry, lifetime = got
                # refresh at 80 % of a short lifetime, 60 s before the end of a long one
                if time.time() < expiry - min(60.0, lifetime * 0.2):
                    return tok
            return self._fetch(user)

    def invalidate(self, user: str) -> None:
        with self._lock:
            self._cache.pop(user, None)

    def _fetch(self, user: str) -> Secret:
        import httpx

        rt = self.refresh.get(user)
        if rt is None:
            raise TokenError(f"no OAuth2 refresh token for {user}")
        data = {"grant_type": "refresh_token", "refresh_token": rt.reveal()}
        if self.scope:
            data["scope"] = self.scope
        auth = None
        if self.client_secret is not None:
            auth = httpx.BasicAuth(self.client_id, self.client_secret.reveal())
        else:
            data["client_id"] = self.client_id
        try:
            r = httpx.post(self.token_url, data=data, auth=auth, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise TokenError(f"token endpoint {self.token_url}: {type(exc).__name__}") \
                from None
        try:
            body = r.json()
        except ValueError:
            body = {}
        if r.status_code != 200 or not isinstance(body, dict) or not body.get("access_token"):
            why = body.get("error", "") if isinstance(body, dict) else ""
            raise TokenError(f"token endpoint {self.token_url} refused the refresh for {user}: "
                             f"HTTP {r.status_code} {why}".rstrip())
        lifetime = float(body.get("expires_in") or 3600)
        tok = Secret(str(body["access_token"]), source=f"oauth2:{user}")
        self._cache[user] = (tok, time.time() + lifetime, lifetime)
        self.issued += 1
        new_rt = body.get("refresh_token")
        if new_rt and new_rt != rt.reveal():
            self.refresh[user] = Secret(str(new_rt), source=f"oauth2-refresh:{user}")
            if self.on_rotate is not None:
                self.on_rotate(user, self.refresh[user])
        return tok


class OAuth2Auth:
    """XOAUTH2 (Google's and Microsoft's SASL form) or OAUTHBEARER (RFC 7628)."""

    def __init__(self, tokens: RefreshTokens, mechanism: str = "XOAUTH2") -> None:
        mech = mechanism.upper()
        if mech not in ("XOAUTH2", "OAUTHBEARER"):
            raise ValueError(f"OAuth2 mechanism {mechanism!r} (expected xoauth2 or oauthbearer)")
        self.tokens, self.mechanism = tokens, mech
        self.label = f"OAuth2 ({mech.lower()})"

    def _response(self, conn: Connection, user: str, token: Secret) -> bytes:
        if self.mechanism == "XOAUTH2":
            return f"user={user}\x01auth=Bearer {token.reveal()}\x01\x01".encode()
        port = conn.sock.getpeername()[1]
        return (f"n,a={user},\x01host={conn.host}\x01port={port}\x01"
                f"auth=Bearer {token.reveal()}\x01\x01").encode()

    def login(self, conn: Connection, user: str) -> None:
        said = ""
        for attempt in range(2):  # a cached token the server no longer takes: once more
            if attempt:
                self.tokens.invalidate(user)
            ok, said = conn.authenticate(self.mechanism,
                                         self._response(conn, user, self.tokens.token(user)))
            if ok:
                return
        raise ImapError(f"{conn.host}: {self.mechanism} login failed for {user}: {said}")
