"""Provider registry. Modules are imported only when a config names their type,
so the CLI does not pay for HTTP clients it will not use."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the sandbox, which runs without the venv's packages, imports dms/
    from mailctl.providers.base import Provider

_REGISTRY: dict[str, str] = {
    "dms": "mailctl.providers.dms.provider:DmsProvider",
    "mailcow": "mailctl.providers.mailcow:MailcowProvider",
    "mailu": "mailctl.providers.mailu:MailuProvider",
    "migadu": "mailctl.providers.migadu:MigaduProvider",
    "stalwart": "mailctl.providers.stalwart:StalwartProvider",
}


def provider_types() -> list[str]:
    return sorted(_REGISTRY)


def provider_class(type_name: str) -> type[Provider]:
    target = _REGISTRY[type_name]
    module_name, _, attr = target.partition(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), attr)
    return cls


def spelling_hint(path: tuple[str | int, ...], value: object) -> str | None:
    """A hint for a config value that is a provider's own word for one of mailctl's
    (Migadu's spam `subject` is mailctl's `tag`), for the config's error messages."""
    if len(path) < 2 or path[-2] != "spam" or not isinstance(value, str):
        return None
    from mailctl.providers.migadu.codec import mailctl_word

    word = mailctl_word(str(path[-1]), value)
    if word is None:
        return None
    return (f"{value!r} is Migadu's word for it: write mailctl's {word!r}, which is sent to "
            f"Migadu as {value!r}")
