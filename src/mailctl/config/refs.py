"""Secret references: `${env:NAME}`, `${file:PATH}`, with a `.env` beside the config.

A reference is resolved into a `Secret` at load time, so a missing variable
is a config error with a position, not a failure half-way through an apply.
The process environment wins over `.env`, as in every twelve-factor tool.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from mailctl.errors import MailctlError
from mailctl.secret import Secret
from mailctl.util.files import FileReadError, read_text

# A secret is a password or a key; a .env a few hundred lines. Anything bigger
# is a mistake (a path to the wrong file), refused before it is read into memory.
MAX_SECRET_BYTES = 64 * 1024
MAX_DOTENV_BYTES = 1024 * 1024

REF_RE = re.compile(r"^\$\{(env|file):([^}]+)\}$")


class RefError(MailctlError, ValueError):
    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def is_reference(value: str) -> bool:
    return bool(REF_RE.match(value.strip()))


@dataclass
class Resolver:
    base_dir: Path
    # Deferred: references are checked for syntax only and yield an empty Secret, for
    # commands that never use them (`dns check` must not need the provider's API key).
    deferred: bool = False
    _dotenv: dict[str, str | None] | None = field(default=None, repr=False)
    _dotenv_error: str | None = field(default=None, repr=False)

    def _env_file(self) -> dict[str, str | None]:
        """The `.env` beside the config. Its read error is raised once (at the first
        reference that needs it); later references just do not find their variable."""
        if self._dotenv is None:
            path = self.base_dir / ".env"
            self._dotenv = {}
            if not os.path.lexists(path):
                return self._dotenv
            try:
                text = read_text(path, limit=MAX_DOTENV_BYTES, what=".env file")
            except FileReadError as exc:
                self._dotenv_error = exc.message
                raise RefError(exc.message, exc.hint
                               or "fix or remove the .env file beside the config") from None
            import io

            from dotenv import dotenv_values

            self._dotenv = dict(dotenv_values(stream=io.StringIO(text)))
        return self._dotenv

    def resolve(self, value: str) -> Secret:
        m = REF_RE.match(value.strip())
        if not m:
            raise RefError(
                "a secret must be a reference, not a literal value",
                "write ${env:NAME} or ${file:path/to/secret}, so the config file can be "
                "committed without the secret",
            )
        kind, arg = m.group(1), m.group(2).strip()
        source = f"${{{kind}:{arg}}}"
        if self.deferred:
            return Secret("", source)
        if kind == "env":
            got = os.environ.get(arg)
            if got is None:
                got = self._env_file().get(arg)
            if not got:
                unread = (f" ({self._dotenv_error})" if self._dotenv_error else "")
                raise RefError(
                    f"environment variable {arg} is not set (referenced as {source})"
                    + unread,
                    f"export {arg}=... or add it to {self.base_dir / '.env'}",
                )
            return Secret(got, source)
        path = (self.base_dir / Path(arg).expanduser())
        try:
            text = read_text(path, limit=MAX_SECRET_BYTES, what="secret file")
        except FileReadError as exc:
            raise RefError(f"{exc.message} (referenced as {source})", exc.hint) from None
        text = text.rstrip("\r\n")
        if not text:
            raise RefError(f"secret file {path} is empty")
        return Secret(text, source)
