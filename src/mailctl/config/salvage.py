"""Validate what can be validated when part of the file has the wrong shape.

The docs promise every problem in one run. Pydantic reports every shape
problem at once but then yields no model, so without this an unknown key in
one mailbox hid an alias loop elsewhere. `salvage` removes exactly what the
schema refused (a key with a wrong value; an item missing a required key)
from a copy of the data and validates again, so the cross-reference checks
run on everything that was well-formed.

Removing list items shifts indices, and every later message must still point
at the user's line: `Salvaged.original()` maps a path in the salvaged data
back to the path in the file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from mailctl.config.yamlpos import Path_

_ROUNDS = 6  # removing a value can make its parent invalid; a few rounds settle it


@dataclass
class Salvaged:
    model: BaseModel | None  # None: nothing usable was left
    # original path of a list -> original indices of the items still in it, in order
    alive: dict[Path_, list[int]] = field(default_factory=dict)
    # original paths of whole items or sections that were removed
    dropped: list[Path_] = field(default_factory=list)

    def original(self, path: Path_) -> Path_:
        """The file's path for a path in the salvaged data."""
        out: list[str | int] = []
        for part in path:
            if isinstance(part, int):
                keep = self.alive.get(tuple(out))
                if keep is not None and 0 <= part < len(keep):
                    part = keep[part]
            out.append(part)
        return tuple(out)

    def _current(self, path: Path_) -> Path_ | None:
        """The salvaged data's path for a file path; None if it was removed."""
        out: list[str | int] = []
        orig: list[str | int] = []
        for part in path:
            cur = part
            if isinstance(part, int):
                keep = self.alive.get(tuple(orig))
                if keep is not None:
                    if part not in keep:
                        return None
                    cur = keep.index(part)
            orig.append(part)
            out.append(cur)
        return tuple(out)


def _clean(loc: tuple[Any, ...]) -> Path_:
    """Pydantic's location without its union/tag markers."""
    return tuple(p for p in loc if not (isinstance(p, str) and "[" in p))


def salvage(model: type[BaseModel], data: dict[str, Any],
            first: ValidationError) -> Salvaged:
    out = Salvaged(None)
    work = copy.deepcopy(data)
    errors = first.errors()
    for _ in range(_ROUNDS):
        removals: list[Path_] = []
        for err in errors:
            path = out.original(_clean(err["loc"]))
            # An item without a required key cannot be used at all; a wrong value
            # only loses that value (the field falls back to "not managed").
            removals.append(path[:-1] if err["type"] == "missing" else path)
        if any(not r for r in removals):
            return out  # the file as a whole is unusable
        _remove(out, work, removals)
        try:
            out.model = model.model_validate(work)
            return out
        except ValidationError as exc:
            errors = exc.errors()
    return out


def _remove(out: Salvaged, work: dict[str, Any], removals: list[Path_]) -> None:
    drops: dict[Path_, set[int]] = {}
    for path in sorted(set(removals), key=len):
        if any(path[:len(d)] == d for d in out.dropped):
            continue  # inside something already removed
        cur = out._current(path)
        if cur is None:
            continue
        parent: Any = work
        for part in cur[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        last = cur[-1]
        if isinstance(parent, dict) and last in parent:
            del parent[last]
            if len(path) <= 4:  # a section, a provider, a domain or a domain's list
                out.dropped.append(path)
        elif isinstance(parent, list) and isinstance(last, int) and 0 <= last < len(parent):
            drops.setdefault(path[:-1], set()).add(int(path[-1]))
            out.dropped.append(path)
    for lpath, gone in drops.items():
        cur = out._current(lpath)
        if cur is None:
            continue
        target: Any = work
        for part in cur:
            target = target[part]
        keep = out.alive.get(lpath, list(range(len(target))))
        target[:] = [v for v, o in zip(target, keep, strict=True) if o not in gone]
        out.alive[lpath] = [o for o in keep if o not in gone]
