"""A console over a real sandbox, signed into through the real test OP.

`site` (module scope) is one sandbox (tests/fixtures/mailstack.py) holding a
domain applied from a real mailctl.yaml by the provisioning library, a console
built from that config by `mailctl.web.serve.build` and served by uvicorn on a
free port, and OP users for each role. `SiteFactory` builds further consoles
(other settings) over the same sandbox.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.mailstack import MailStack, free_ports, unique_domain
from tests.fixtures.oidc import OidcProvider


class ListHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Server:
    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def serve(make_app: Callable[[str], Any]) -> Server:
    """Serve `make_app(public_url)` with uvicorn in a thread on a free port."""
    import uvicorn

    port = free_ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    config = uvicorn.Config(make_app(url), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the console did not start")
        time.sleep(0.01)
    return Server(url, server, thread)


@dataclass
class Site:
    """One console over the sandbox: its URL, config, and who can sign in."""

    url: str
    domain: str
    config_path: Path
    stack: MailStack
    op: OidcProvider
    passwords: dict[str, str]  # mailbox -> its password, as applied
    client_secret: str
    server: Server
    logs: ListHandler
    logins: dict[str, str] = field(default_factory=dict)  # role -> OP login

    @property
    def state_dir(self) -> Path:
        return self.config_path.parent / ".mailctl" / "console"

    @property
    def console(self) -> Any:
        """The running app's `Console` (its settings, secrets, services)."""
        return self.server.server.config.app.state.console

    def forge_cookie(self, role: str, *, age: float = 0.0, expires_in: float = 3600.0) -> str:
        """A session cookie for `role` as the console would sign it `age` seconds ago."""
        import time

        from itsdangerous import TimestampSigner

        from mailctl.web.auth import SESSION_KEY, Identity
        from mailctl.web.session import SessionMiddleware

        c = self.console
        now = time.time()
        mailbox = f"alice@{self.domain}" if role == "alice" else None
        who = Identity(role, role, mailbox or f"{role}@corp.test", (), role == "admin", (),
                       mailbox, "oidc", now - age, now + expires_in)
        mw = SessionMiddleware(None, c.secrets.session_key, idle_timeout=3600, path="/",  # type: ignore[arg-type]
                               secure=False)

        class Backdated(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(now - age)

        mw.signer = Backdated(c.secrets.session_key, salt="mailctl.console.session")
        return mw.dump({SESSION_KEY: who.as_session(), "csrf": "forged-csrf-token"})

    def secrets_seen(self) -> list[str]:
        return [*self.passwords.values(), self.client_secret, *self.op.users.values()]


CONFIG = """\
providers:
  sandbox:
    type: dms
    path: {dms}
domains:
  {domain}:
    provider: sandbox
    mailboxes:
{mailboxes}
console:
  oidc:
    issuer: {issuer}
    client_id: {client_id}
    client_secret: ${{env:CONSOLE_CLIENT_SECRET}}
    scopes: [openid, email, profile, groups]
  access:
    admin_roles: [mail-admins]
    domain_admin_roles:
      {domain}-admins: [{domain}]
    domains_claim: mail_domains
  # every test signs in from 127.0.0.1; the default (10 at once) is tested on its own
  # in test_security.py, and a fast machine would hit it here after 5 sign-ins
  rate_limit: {{per_minute: 600, burst: 100}}
{extra}
{top}
"""


def make_site(stack: MailStack, op: OidcProvider, users: list[str], *, extra: str = "",
              base: Path | None = None, wrong_secret: str | None = None,
              path: str = "", top: str = "") -> Site:
    """`extra` goes under `console:`; `top` (formatted with domain, host, ports, ca)
    at the top level of mailctl.yaml."""
    from mailctl.config.load import load_config
    from mailctl.provision.engine import execute, make_plan
    from mailctl.web.serve import build

    domain = unique_domain("web")
    base = base or Path(tempfile.mkdtemp(prefix="mailctl-web-"))
    (base / "pw").mkdir(exist_ok=True)
    passwords = {}
    lines = []
    for local in users:
        pw = secrets.token_urlsafe(18)
        (base / "pw" / local).write_text(pw)
        passwords[f"{local}@{domain}"] = pw
        lines.append(f"      - local_part: {local}\n        password: ${{file:pw/{local}}}")
    port_holder: dict[str, str] = {}
    info = stack.info
    handler = ListHandler()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def factory(url: str) -> Any:
        client_id, client_secret = op.register_client(url)
        port_holder["secret"] = client_secret
        (base / ".env").write_text(f"CONSOLE_CLIENT_SECRET={wrong_secret or client_secret}\n")
        cfg_path = base / "mailctl.yaml"
        cfg_path.write_text(CONFIG.format(dms=stack.dms_dir, domain=domain,
                                      mailboxes="\n".join(lines), issuer=op.issuer,
                                      client_id=client_id,
                                      extra=textwrap.indent(extra, "  "),
                                      top=top.format(domain=domain, host=info.host,
                                                     imaps=info.ports.imaps,
                                                     submission=info.ports.submission,
                                                     ca=info.ca_file)))
        config = load_config(cfg_path)
        result = execute(config, make_plan(config))
        assert result.ok, [o.error for o in result.outcomes]
        return build(config, public_url=url)

    def at_path(url: str) -> Any:
        return factory(url + path)

    for name in ("mailctl", "uvicorn", "authlib", "httpx"):
        logging.getLogger(name).addHandler(handler)
    logging.getLogger("mailctl").setLevel(logging.DEBUG)
    server = serve(at_path)
    return Site(server.url + path, domain, base / "mailctl.yaml", stack, op, passwords,
                port_holder["secret"], server, handler)


def stop_site(site: Site) -> None:
    site.server.stop()
    for name in ("mailctl", "uvicorn", "authlib", "httpx"):
        logging.getLogger(name).removeHandler(site.logs)


def add_people(site: Site) -> None:
    """OP users: an admin, a domain admin, two mailbox owners, an outsider, an unverified."""
    op, d = site.op, site.domain
    tag = d.split(".")[0]
    people: dict[str, tuple[str, dict[str, Any]]] = {
        "admin": ("root", {"email": f"root@corp-{tag}.test", "groups": ["mail-admins"]}),
        "domain_admin": ("dadmin", {"email": f"dadmin@corp-{tag}.test",
                                    "groups": [f"{d}-admins"]}),
        "alice": ("alice", {"email": f"alice@{d}", "groups": ["staff"], "name": "Alice"}),
        "bob": ("bob", {"email": f"bob@{d}", "groups": ["staff"], "name": "Bob"}),
        "outsider": ("eve", {"email": f"eve@elsewhere-{tag}.test", "groups": ["staff"]}),
        "unverified": ("mallory", {"email": f"alice@{d}", "email_verified": False,
                                   "groups": ["staff"]}),
    }
    for role, (login, claims) in people.items():
        login = f"{login}-{tag}"
        claims.setdefault("email_verified", True)
        op.add_user(login, secrets.token_urlsafe(12), **claims)
        site.logins[role] = login


@pytest.fixture(scope="module")
def site(mailstack: MailStack, oidc_provider: OidcProvider) -> Iterator[Site]:
    s = make_site(mailstack, oidc_provider, ["alice", "bob", "carol"])
    add_people(s)
    yield s
    stop_site(s)


def sign_in(page: Any, site: Site, role: str, *, expect: str | None = "/") -> None:
    """Click through the real sign-in: console -> OP form -> back on the console."""
    login = site.logins[role]
    page.goto(site.url + "/")
    page.click("#signin")
    page.wait_for_url(f"{site.op.issuer}/interaction/**")
    page.fill("#op-user", login)
    page.fill("#op-password", site.op.users[login])
    page.click("#op-submit")
    if expect is not None:
        page.wait_for_url(f"{site.url}{expect}**")
