"""Configuration errors that point at the exact spot in the user's file."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mailctl.config.yamlpos import Located, Path_, Pos
from mailctl.errors import MailctlError


@dataclass(slots=True)
class Issue:
    file: str
    pos: Pos | None
    message: str
    hint: str | None = None
    path: Path_ = ()

    def location(self) -> str:
        if self.pos is None:
            return self.file
        return f"{self.file}:{self.pos.line}:{self.pos.col}"

    def dotted(self) -> str:
        parts: list[str] = []
        for p in self.path:
            parts.append(f"[{p}]" if isinstance(p, int) else (("." if parts else "") + str(p)))
        return "".join(parts)

    def format(self) -> str:
        where = self.dotted()
        text = f"{self.location()}: error: {self.message}"
        if where:
            text += f" (at {where})"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.pos.line if self.pos else None,
            "column": self.pos.col if self.pos else None,
            "field": self.dotted(),
            "message": self.message,
            "hint": self.hint,
        }


class ConfigError(MailctlError):
    """One or more problems in a config file; all are reported at once."""

    def __init__(self, issues: list[Issue], omitted: int = 0) -> None:
        super().__init__("\n".join(i.format() for i in issues))
        self.issues = issues
        self.omitted = omitted  # problems past MAX_ISSUES, counted but not listed

    @property
    def count(self) -> int:
        return len(self.issues) + self.omitted


# A hostile or generated file can hold a million mistakes; each listed one costs
# a position lookup and a line of output. Past this many, they are only counted.
MAX_ISSUES = 500


@dataclass(slots=True)
class Collector:
    """Gathers issues while validation goes on, so the user sees all of them."""

    file: str
    located: Located | None = None
    issues: list[Issue] = field(default_factory=list)
    # Maps a path in salvaged data back to the file's path (config/salvage.py).
    translate: Callable[[Path_], Path_] | None = None
    omitted: int = 0

    def pos(self, path: Path_, prefer_key: bool = False) -> Pos | None:
        if self.translate is not None:
            path = self.translate(path)
        return self.located.pos(path, prefer_key) if self.located else None

    def add(
        self,
        path: Path_,
        message: str,
        hint: str | None = None,
        *,
        at_key: bool = False,
        pos: Pos | None = None,
    ) -> None:
        if len(self.issues) >= MAX_ISSUES:
            self.omitted += 1
            return
        if self.translate is not None:
            path = self.translate(path)
        if pos is None and self.located:
            pos = self.located.pos(path, prefer_key=at_key)
        self.issues.append(Issue(self.file, pos, message, hint, tuple(path)))

    def raise_if_any(self) -> None:
        if self.issues:
            self.issues.sort(key=lambda i: (i.pos.line, i.pos.col) if i.pos else (0, 0))
            raise ConfigError(self.issues, self.omitted)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}?" if match else None
