"""Provider and relay profiles, loaded from the YAML files in `profiles/`.

Knowledge about providers changes more often than code, so it lives in data
files; this module only parses them into typed objects and fills templates.
Extra directories can be searched first, which is how tests (and users with an
in-house relay) add profiles without touching the package.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).with_name("profiles")


class ProfileError(ValueError):
    """A profile that does not exist or does not parse."""


@dataclass(frozen=True, slots=True)
class ExtraRecord:
    name: str
    rtype: str
    value: str
    optional: bool = False
    purpose: str = "other"


@dataclass(frozen=True, slots=True)
class Profile:
    kind: str  # "providers" | "relays"
    name: str
    title: str = ""
    notes: str = ""
    self_hosted: bool = False
    params: tuple[str, ...] = ()
    mx: tuple[tuple[int, str], ...] = ()
    spf_include: tuple[str, ...] = ()
    spf_mechanisms: tuple[str, ...] = ()
    spf_all: str | None = None
    spf_recognise: tuple[str, ...] = ()
    dkim_kind: str = "txt"
    dkim_selectors: tuple[str, ...] = ()
    dkim_target: str | None = None
    dkim_value: str | None = None
    dmarc_policy: str | None = None
    records: tuple[ExtraRecord, ...] = field(default_factory=tuple)
    smtp_host: str | None = None  # a relay's submission host, for servers mailctl configures
    smtp_port: int = 587

    def sender_names(self) -> set[str]:
        """Literal SPF include names that identify mail sent through this profile."""
        return {
            n.lower() for n in (*self.spf_include, *self.spf_recognise) if "{" not in n
        }


class _Formatter(string.Formatter):
    def get_value(self, key: int | str, args: Any, kwargs: Any) -> Any:
        if isinstance(key, str) and key not in kwargs:
            raise KeyError(key)
        return super().get_value(key, args, kwargs)


def fill(template: str, values: Mapping[str, str]) -> str | None:
    """The template with `values` substituted, None if a value is missing.

    None (not an exception) because a missing user parameter only means the
    record can be checked for presence, not for its exact value.
    """
    try:
        return _Formatter().format(template, **values)
    except KeyError:
        return None


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _parse(kind: str, path: Path) -> Profile:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: not a mapping")
    try:
        spf = data.get("spf") or {}
        dkim = data.get("dkim") or {}
        smtp = data.get("smtp") or {}
        dmarc = data.get("dmarc") or {}
        mx = tuple((int(m["preference"]), str(m["host"])) for m in data.get("mx") or ())
        records = tuple(
            ExtraRecord(
                name=str(r["name"]),
                rtype=str(r["type"]).upper(),
                value=str(r["value"]),
                optional=bool(r.get("optional", False)),
                purpose=str(r.get("purpose", "other")),
            )
            for r in data.get("records") or ()
        )
        return Profile(
            kind=kind,
            name=str(data.get("name", path.stem)),
            title=str(data.get("title", "")),
            notes=str(data.get("notes", "")),
            self_hosted=bool(data.get("self_hosted", False)),
            params=_tuple(data.get("params")),
            mx=mx,
            spf_include=_tuple(spf.get("include")),
            spf_mechanisms=_tuple(spf.get("mechanisms")),
            spf_all=spf.get("all"),
            spf_recognise=_tuple(spf.get("recognise")),
            dkim_kind=str(dkim.get("kind", "txt")),
            dkim_selectors=_tuple(dkim.get("selectors")),
            dkim_target=dkim.get("target"),
            dkim_value=dkim.get("value"),
            dmarc_policy=dmarc.get("policy"),
            records=records,
            smtp_host=str(smtp["host"]) if smtp.get("host") else None,
            smtp_port=int(smtp.get("port", 587)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ProfileError(f"{path}: bad profile ({exc!r})") from None


@cache
def _load_dir(directory: Path, kind: str) -> dict[str, Profile]:
    found: dict[str, Profile] = {}
    folder = directory / kind
    if folder.is_dir():
        for path in sorted(folder.glob("*.yaml")):
            found[path.stem] = _parse(kind, path)
    return found


def all_profiles(kind: str, extra_dirs: Iterable[Path] = ()) -> dict[str, Profile]:
    """Every profile of `kind`; files in `extra_dirs` override packaged ones."""
    merged = dict(_load_dir(PACKAGE_DIR, kind))
    for directory in extra_dirs:
        merged.update(_load_dir(Path(directory), kind))
    return merged


def get_profile(kind: str, name: str, extra_dirs: Iterable[Path] = ()) -> Profile:
    profiles = all_profiles(kind, extra_dirs)
    try:
        return profiles[name]
    except KeyError:
        what = "provider profile" if kind == "providers" else "relay profile"
        known = ", ".join(sorted(profiles)) or "none"
        raise ProfileError(f"unknown {what} {name!r} (known: {known})") from None
