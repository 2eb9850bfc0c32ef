"""console serve / console hash-password: the web console on its own.

`mailctl serve` runs it beside the accounts API when the config has a
`console:` section; `console serve` runs only the console (and autoconfig).
Starlette, Authlib and uvicorn are imported inside the commands.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from mailctl.cli.common import FAILED, USAGE, ConfigOpt, err, fail, load

console_app = typer.Typer(no_args_is_help=True,
                          help="The web console: SSO sign-in, dashboard, self-service.")


def _public_url(value: str | None) -> str | None:
    if value is None:
        return None
    from mailctl.web.settings import _http_url

    try:
        return _http_url(value, "--public-url")
    except ValueError as exc:
        fail(f"{exc}", USAGE)


@console_app.command("serve")
def serve(
    host: Annotated[str | None, typer.Option(help="listen address [default: console.host]",
                                             show_default=False)] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="listen port "
                                             "[default: console.port]",
                                             show_default=False)] = None,
    public_url: Annotated[str | None, typer.Option(
        "--public-url", help="where people reach it, path prefix included "
        "[default: console.public_url, else http://HOST:PORT]", show_default=False)] = None,
    file: ConfigOpt = None,
) -> None:
    """Serve the console (and autoconfig/autodiscover) until interrupted."""
    import logging
    import os

    url = _public_url(public_url)
    config = load(file)
    from mailctl.web.serve import ConsoleConfigError, build, settings_of

    try:
        settings = settings_of(config)
        h, p = host or settings.host, port if port is not None else settings.port
        url = url or settings.public_url or f"http://{h}:{p}"
        build(config, url)  # every reference resolved and checked before listening
    except ConsoleConfigError as exc:
        fail(str(exc), FAILED)
    finally:
        config.close()
    import uvicorn

    os.environ["MAILCTL_CONFIG"] = str(config.path.resolve())
    os.environ["MAILCTL_CONSOLE_URL"] = url
    if not logging.getLogger("mailctl").handlers:
        from mailctl.cli.common import setup_logging

        setup_logging(1)
    logging.getLogger("mailctl").setLevel(logging.INFO)
    err(f"console on http://{h}:{p} (public URL {url})")
    uvicorn.run("mailctl.web.serve:console_from_env", factory=True, host=h, port=p,
                workers=1, access_log=False, log_level="warning", proxy_headers=False,
                forwarded_allow_ips=[])


@console_app.command("hash-password")
def hash_password() -> None:
    """Hash a break-glass password (read from stdin, or asked twice) for
    console.break_glass.password_hash; store the output in a file and reference it."""
    from mailctl.web.auth import hash_password as make_hash

    if sys.stdin.isatty():
        password = typer.prompt("break-glass password", hide_input=True,
                                confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 16:
        fail("a break-glass password needs at least 16 characters", USAGE)
    print(make_hash(password))


def register(app: typer.Typer) -> None:
    app.add_typer(console_app, name="console",
                  help="The web console: SSO sign-in, dashboard, self-service.")
