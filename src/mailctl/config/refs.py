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

from mailctl.secret import Secret

REF_RE = re.compile(r"^\$\{(env|file):([^}]+)\}$")


class RefError(ValueError):
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

    def _env_file(self) -> dict[str, str | None]:
        if self._dotenv is None:
            path = self.base_dir / ".env"
            if path.is_file():
                from dotenv import dotenv_values

                self._dotenv = dict(dotenv_values(path))
            else:
                self._dotenv = {}
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
                raise RefError(
                    f"environment variable {arg} is not set (referenced as {source})",
                    f"export {arg}=... or add it to {self.base_dir / '.env'}",
                )
            return Secret(got, source)
        path = (self.base_dir / arg).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RefError(f"secret file {path} does not exist (referenced as {source})") from None
        except OSError as exc:
            raise RefError(f"cannot read secret file {path}: {exc.strerror}") from None
        text = text.rstrip("\r\n")
        if not text:
            raise RefError(f"secret file {path} is empty")
        return Secret(text, source)
