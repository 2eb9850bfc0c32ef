"""Who is signed in: OpenID Connect through Authlib, roles from claims, break-glass.

The OIDC flow is Authlib's (discovery, authorization code with PKCE S256,
state and nonce kept in the session, the ID token checked for issuer,
audience, expiry, nonce and its JWKS signature). What is ours: userinfo is
asked when the ID token lacks the email or roles claim (Pocket ID and
oidc-provider put them only there), its `sub` must equal the ID token's, an
email counts only with `email_verified`, and every OAuth failure becomes a
sign-in page that says what went wrong in words.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from mailctl.web.errors import Forbidden, SignInFailed, Unavailable

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from mailctl.secret import Secret
    from mailctl.web.settings import AccessSettings, OidcSettings

SESSION_KEY = "who"


@dataclass(frozen=True, slots=True)
class Identity:
    subject: str
    name: str
    email: str | None  # verified only
    roles: tuple[str, ...]
    admin: bool  # every domain
    admin_domains: tuple[str, ...]
    mailbox: str | None  # the declared mailbox this person owns
    via: str  # oidc | break-glass
    issued: float
    expires: float
    id_token: str | None = None

    @property
    def actor(self) -> str:
        return self.email or f"{self.via}:{self.subject}"

    @property
    def is_admin(self) -> bool:
        return self.admin or bool(self.admin_domains)

    def can_admin(self, domain: str) -> bool:
        return self.admin or domain in self.admin_domains

    def visible(self, domains: Collection[str]) -> list[str]:
        return [d for d in domains if self.can_admin(d)]

    def as_session(self) -> dict[str, Any]:
        return {"sub": self.subject, "name": self.name, "email": self.email,
                "roles": list(self.roles), "admin": self.admin,
                "domains": list(self.admin_domains), "mailbox": self.mailbox, "via": self.via,
                "iat": self.issued, "exp": self.expires, "idt": self.id_token}

    @classmethod
    def from_session(cls, data: object) -> Identity | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(str(data["sub"]), str(data["name"]), data.get("email"),
                       tuple(data["roles"]), bool(data["admin"]), tuple(data["domains"]),
                       data.get("mailbox"), str(data["via"]), float(data["iat"]),
                       float(data["exp"]), data.get("idt"))
        except (KeyError, TypeError, ValueError):
            return None


def claim_values(value: object) -> tuple[str, ...]:
    """A roles claim as a tuple: a JSON list, or a string of space/comma separated values."""
    if isinstance(value, str):
        return tuple(v for v in re.split(r"[\s,]+", value) if v)
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value if isinstance(v, str | int))
    return ()


def verified_email(claims: dict[str, Any]) -> str | None:
    email = claims.get("email")
    verified = claims.get("email_verified")
    if not isinstance(email, str) or not email:
        return None
    if verified is True or (isinstance(verified, str) and verified.lower() == "true"):
        return email.strip().lower()
    return None


def resolve_identity(claims: dict[str, Any], access: AccessSettings, roles_claim: str,
                     declared: Collection[str], is_mailbox: Callable[[str], bool],
                     max_age: float, id_token: str | None) -> Identity:
    """The identity these claims give, or Forbidden when they give nothing here."""
    sub = str(claims.get("sub") or "")
    if not sub:
        raise SignInFailed("the identity provider's answer has no subject (sub)")
    roles = claim_values(claims.get(roles_claim))
    email = verified_email(claims)
    admin = bool(set(roles) & set(access.admin_roles))
    domains: set[str] = set()
    for role in roles:
        domains.update(d.lower() for d in access.domain_admin_roles.get(role, ()))
    if access.domains_claim:
        domains.update(d.lower() for d in claim_values(claims.get(access.domains_claim)))
    admin_domains = tuple(sorted(d for d in domains if d in declared))
    mailbox = email if email and access.users and is_mailbox(email) else None
    if mailbox and access.user_roles and not set(roles) & set(access.user_roles):
        mailbox = None
    if not admin and not admin_domains and mailbox is None:
        who = email or claims.get("email") or sub
        why = ("" if email or not claims.get("email") else
               " (its email address is not verified at the identity provider)")
        raise Forbidden(f"{who} has no access to this console{why}: no admin role, and no "
                        "mailbox declared for this address that you may manage. Ask an "
                        "administrator if you think this is wrong.")
    now = time.time()
    name = str(claims.get("name") or claims.get("preferred_username") or email or sub)
    return Identity(sub, name, email, roles, admin, admin_domains, mailbox, "oidc", now,
                    now + max_age, id_token)


# -- OIDC --------------------------------------------------------------------------

_EXPLAIN = {
    "mismatching_state": "this sign-in did not start in this browser session, or was "
                         "tampered with (state mismatch). Start again from the sign-in button.",
    "invalid_client": "the identity provider refused the console's client credentials "
                      "(invalid_client). An administrator must check console.oidc.client_id "
                      "and client_secret.",
    "invalid_grant": "the sign-in code has expired or was already used (invalid_grant). "
                     "Start again from the sign-in button.",
    "access_denied": "the sign-in was cancelled or refused at the identity provider "
                     "(access_denied).",
}


class OidcClient:
    def __init__(self, settings: OidcSettings, client_secret: Secret, redirect_uri: str,
                 post_logout_uri: str) -> None:
        import warnings

        with warnings.catch_warnings():
            # Authlib 1.9 warns on import that it prefers the `httpx2` fork; httpx works.
            # Its own module adds an "always" filter when imported, so import it first.
            import authlib.deprecate  # noqa: F401

            warnings.simplefilter("ignore", DeprecationWarning)
            from authlib.integrations.starlette_client import OAuth

        import httpx

        self.settings = settings
        self.redirect_uri = redirect_uri
        self.post_logout_uri = post_logout_uri
        # Authlib makes a new httpx client for every call (the authorization URL, the
        # token, userinfo): three per sign-in, each loading the CA bundle into a new TLS
        # context, 50-60 ms of CPU apiece, 75 % of the console's CPU per sign-in
        # (cProfile). One context, made here with httpx's own defaults (certifi, or
        # SSL_CERT_FILE/SSL_CERT_DIR), is shared: the same certificate checks, once.
        self.tls = httpx.create_ssl_context()
        oauth = OAuth()
        oauth.register(
            "console", client_id=settings.client_id, client_secret=client_secret.reveal(),
            server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
            client_kwargs={"scope": " ".join(settings.scopes), "code_challenge_method": "S256",
                           "timeout": settings.timeout, "verify": self.tls})
        self.client: Any = oauth.create_client("console")

    async def start(self, request: Request) -> Response:
        import httpx

        try:
            response: Response = await self.client.authorize_redirect(request,
                                                                      self.redirect_uri)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            raise Unavailable(f"the identity provider at {self.settings.issuer} could not be "
                              f"reached ({type(exc).__name__})") from None
        return response

    async def finish(self, request: Request) -> tuple[dict[str, Any], str | None]:
        """The callback: (claims, raw ID token), or SignInFailed/Unavailable."""
        import httpx
        from authlib.common.errors import AuthlibBaseError
        from joserfc.errors import JoseError

        try:
            token = await self.client.authorize_access_token(request)
            claims = dict(token.get("userinfo") or {})
            if not claims:
                raise SignInFailed("the identity provider sent no ID token; the console needs "
                                   "OpenID Connect (scope openid)")
            if verified_email(claims) is None or self.settings.roles_claim not in claims:
                info = dict(await self.client.userinfo(token=token))
                if str(info.get("sub")) != str(claims.get("sub")):
                    raise SignInFailed("the userinfo answer is for another subject than the "
                                       "ID token; refusing it")
                for key, value in info.items():
                    claims.setdefault(key, value)
                if verified_email(claims) is None and verified_email(info) is not None:
                    claims["email"], claims["email_verified"] = info["email"], True
        except AuthlibBaseError as exc:
            error = str(getattr(exc, "error", "") or "")
            why = _EXPLAIN.get(error) or (f"the identity provider answered {error}"
                                         + (f": {exc.description}" if exc.description else ""))
            raise SignInFailed(why) from None
        except JoseError as exc:
            raise SignInFailed(f"the ID token did not validate ({type(exc).__name__}: {exc}); "
                               "nothing was signed in") from None
        except httpx.HTTPError as exc:
            raise Unavailable(f"the identity provider at {self.settings.issuer} could not be "
                              f"reached ({type(exc).__name__})") from None
        return claims, token.get("id_token")

    async def logout_url(self, id_token: str | None) -> str | None:
        """The provider's end-session URL (RP-initiated logout), if it offers one."""
        import httpx

        try:
            metadata = await self.client.load_server_metadata()
        except (httpx.HTTPError, ValueError):
            return None
        end = metadata.get("end_session_endpoint")
        if not isinstance(end, str) or not end:
            return None
        params = {"post_logout_redirect_uri": self.post_logout_uri,
                  "client_id": self.settings.client_id}
        if id_token:
            params["id_token_hint"] = id_token
        return f"{end}{'&' if '?' in end else '?'}{urlencode(params)}"


# -- break-glass ---------------------------------------------------------------------
# scrypt from the standard library, so an emergency login needs no extra package.
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM)
    b64 = base64.b64encode
    return f"scrypt${_N}${_R}${_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, hashed: str) -> bool:
    try:
        kind, n, r, p, salt, digest = hashed.strip().split("$")
        if kind != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n),
                             r=int(r), p=int(p), maxmem=_MAXMEM, dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def is_password_hash(value: str) -> bool:
    return value.strip().startswith("scrypt$") and value.count("$") == 5


def break_glass_identity(username: str, max_age: float) -> Identity:
    now = time.time()
    return Identity(username, f"{username} (break-glass)", None, (), True, (), None,
                    "break-glass", now, now + max_age)
