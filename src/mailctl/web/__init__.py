"""The web console: OIDC sign-in, the admin dashboard, users' self-service pages,
and autoconfig/autodiscover for mail apps.

The config loader imports `mailctl.web.settings` at every start-up, so this
package's front door resolves its names lazily: Starlette, Authlib and Jinja2
load only when a console is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailctl.web.app import create_app
    from mailctl.web.errors import ConsoleError
    from mailctl.web.live import ConfigServices
    from mailctl.web.services import ConsoleServices
    from mailctl.web.settings import ConsoleSettings

__all__ = ["ConfigServices", "ConsoleError", "ConsoleServices", "ConsoleSettings", "create_app"]

_WHERE = {
    "create_app": "mailctl.web.app",
    "ConsoleError": "mailctl.web.errors",
    "ConfigServices": "mailctl.web.live",
    "ConsoleServices": "mailctl.web.services",
    "ConsoleSettings": "mailctl.web.settings",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(name)
    import importlib

    return getattr(importlib.import_module(_WHERE[name]), name)
