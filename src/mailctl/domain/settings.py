"""The YAML for whole-domain work: how to reach each provider's mailboxes, and mirrors.

Two additions to mailctl.yaml (docs/domain.md):

    mail_access:              # per provider: IMAP, and how to sign in without users' passwords
      old:
        imap: imaps://mail.example.org        # or imap://host:port
        auth: master                          # master | passwords | oauth2 | temporary
        master: {user: admin, password: "${file:master.pw}"}
      gmail:
        imap: imaps://imap.gmail.com
        auth: oauth2
        oauth2: {token_url: ..., client_id: ..., client_secret: "${env:X}",
                 refresh_tokens: tokens.tsv}
    domains:
      example.org:
        provider: hosted      # receives and filters
        mirror: local         # stores: every mailbox is created on both; `fetch` pulls
        backup: backups/example.org   # `apply --prune` backs a mailbox up here first

Only pydantic is imported: the config loader validates this on every command.
Secret references stay references here; they are resolved by the commands that
sign in (domain/access.py), so `plan` needs no master password.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from mailctl.config.errors import Collector
    from mailctl.config.schema import ConfigFile
    from mailctl.config.semantic import Desired
    from mailctl.config.yamlpos import Path_
    from mailctl.providers.base import Provider

AuthKind = Literal["master", "passwords", "oauth2", "temporary"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MasterSettings(_Model):
    user: str = Field(min_length=1, max_length=255, description="the master user's name "
                      "(docker-mailserver: `setup dovecot-master add NAME`)")
    password: str = Field(description="secret reference: ${env:X} or ${file:path}")
    form: Literal["separator", "authzid"] = Field(
        "separator", description="`user*master` as the login name, or SASL PLAIN with the "
        "user as authorization identity")
    separator: str = Field("*", min_length=1, max_length=4,
                           description="Dovecot's auth_master_user_separator")


class OAuth2Settings(_Model):
    token_url: str = Field(pattern=r"^https?://", description="the OAuth2 token endpoint")
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(None, description="secret reference; absent for a "
                                      "public client")
    refresh_tokens: str = Field(description="file of `address<TAB>refresh token` lines "
                                "(0600), relative to the config; rotated tokens are "
                                "written back")
    mechanism: Literal["xoauth2", "oauthbearer"] = "xoauth2"
    scope: str | None = None


class MailAccess(_Model):
    imap: str = Field(pattern=r"^imaps?://[^/@\s]+/?$",
                      description="imap://host[:port] or imaps://host[:port] (no user)")
    ca_file: str | None = Field(None, description="CA bundle for imaps:// (relative to the "
                                "config) [default: the system's]")
    auth: AuthKind = Field("passwords", description="how mailctl signs in to each mailbox")
    master: MasterSettings | None = None
    passwords: str | None = Field(None, description="`apply --secrets-out` file "
                                  "(address<TAB>password) or CSV address,password, "
                                  "relative to the config")
    oauth2: OAuth2Settings | None = None
    deliver: str | None = Field(None, pattern=r"^(lmtp|smtp):\S+$",
                                description="where mail for this provider's mailboxes is "
                                "delivered when it is a mirror: lmtp:/socket, lmtp:host:port "
                                "or smtp:host:port")


def check_settings(cfg: ConfigFile, col: Collector, desired: Desired,
                   provider_classes: dict[str, type[Provider]]) -> None:
    """The cross-references: providers named in `mail_access` and `mirror` exist, the
    chosen sign-in has its block, secrets are references. Records each domain's mirror
    in `desired.mirror_of` (provisioning creates its mailboxes there too)."""
    from mailctl.config.errors import did_you_mean
    from mailctl.config.refs import is_reference

    known = ", ".join(cfg.providers) or "none"
    for pname, acc in cfg.mail_access.items():
        base = ("mail_access", pname)
        if pname not in cfg.providers:
            col.add(base, f"mail_access for unknown provider {pname!r}",
                    did_you_mean(pname, cfg.providers) or f"declared providers: {known}",
                    at_key=True)
        if acc.auth == "master" and acc.master is None:
            col.add((*base, "auth"), "auth: master needs a `master:` block",
                    "add master: {user: NAME, password: ${file:master.pw}}")
        if acc.auth == "oauth2" and acc.oauth2 is None:
            col.add((*base, "auth"), "auth: oauth2 needs an `oauth2:` block",
                    "add oauth2: {token_url, client_id, client_secret, refresh_tokens}")
        for path, value in (((*base, "master", "password"), acc.master and acc.master.password),
                            ((*base, "oauth2", "client_secret"),
                             acc.oauth2 and acc.oauth2.client_secret)):
            if value and not is_reference(value):
                col.add(path, "a secret must be a reference, not a literal value",
                        "write ${env:NAME} or ${file:path/to/secret}")
    for raw, dc in cfg.domains.items():
        if dc.mirror is None:
            continue
        mpath: Path_ = ("domains", raw, "mirror")
        if dc.mirror not in cfg.providers:
            col.add(mpath, f"unknown mirror provider {dc.mirror!r}",
                    did_you_mean(dc.mirror, cfg.providers) or f"declared providers: {known}")
            continue
        if dc.mirror == dc.provider:
            col.add(mpath, "the mirror is the domain's own provider",
                    "name the provider that stores the mail (the one fetch delivers to)")
            continue
        cls = provider_classes.get(dc.mirror)
        if cls is not None and cls.capabilities.lacks("mailboxes"):
            col.add(mpath, f"provider {dc.mirror!r} cannot hold mailboxes")
            continue
        macc = cfg.mail_access.get(dc.mirror)
        if macc is None or macc.deliver is None:
            col.add(mpath, f"mirror {dc.mirror!r} has no `mail_access.{dc.mirror}.deliver`",
                    "say where fetched mail is delivered, e.g. deliver: lmtp:/run/dovecot/lmtp")
        for name in desired.domains:
            if desired.raw_domain.get(name) == raw:
                desired.mirror_of[name] = dc.mirror
