"""Load mailctl.yaml: YAML with positions -> schema -> semantic checks -> model."""

from __future__ import annotations

import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mailctl.config.errors import Collector, ConfigError, Issue, did_you_mean
from mailctl.config.refs import RefError, Resolver
from mailctl.config.salvage import salvage
from mailctl.config.schema import ConfigFile
from mailctl.config.semantic import Desired, build_desired
from mailctl.config.yamlpos import Located, Path_, YamlSyntaxError, load_located
from mailctl.providers import provider_class, provider_types, spelling_hint
from mailctl.providers.base import Provider, ProviderSettings
from mailctl.util.files import FileReadError, MiB, read_text

DEFAULT_NAME = "mailctl.yaml"


def default_path() -> Path:
    return Path(os.environ.get("MAILCTL_CONFIG") or DEFAULT_NAME)


@dataclass(slots=True)
class ProviderInstance:
    name: str
    type_name: str
    cls: type[Provider]
    settings: ProviderSettings
    raw: dict[str, Any]  # as written in the file, references unresolved


@dataclass
class Config:
    path: Path
    file: ConfigFile
    located: Located
    providers: dict[str, ProviderInstance]
    desired: Desired
    resolver: Resolver
    _live: dict[str, Provider] = field(default_factory=dict)

    @property
    def secrets_resolved(self) -> bool:
        return not self.resolver.deferred

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    def provider(self, name: str) -> Provider:
        """The provider instance (created once per run)."""
        if name not in self._live:
            if self.resolver.deferred:
                raise RuntimeError("config loaded with secrets=False cannot open providers")
            inst = self.providers[name]
            self._live[name] = inst.cls(name, inst.settings, self.base_dir)
        return self._live[name]

    def domains_of(self, provider: str) -> list[str]:
        return sorted(d for d, p in self.desired.provider_of.items() if p == provider)

    def close(self) -> None:
        for p in self._live.values():
            p.close()


# A 100,000-mailbox file is about 8 MiB; parsing takes ~40x the file's size in memory.
MAX_CONFIG_BYTES = 16 * MiB


def read_config_text(path: Path) -> str:
    """The file's text, or a ConfigError: never a hang on a FIFO, never a huge read."""
    name = str(path)
    try:
        return read_text(path, limit=MAX_CONFIG_BYTES, what="config file")
    except FileReadError as exc:
        if not os.path.lexists(path):
            raise ConfigError([Issue(
                name, None, "config file not found",
                "pass -f FILE, set MAILCTL_CONFIG, create ./mailctl.yaml, or run `mailctl init`",
            )]) from None
        raise ConfigError([Issue(name, None, exc.message, exc.hint)]) from None


def load_config(path: Path | None = None, *, secrets: bool = True,
                text: str | None = None) -> Config:
    """The validated config; `secrets=False` for commands that talk to no provider:
    secret references are checked for syntax but not resolved, so a variable that is
    not set (an admin credential a monitor must not hold) is not an error. `text`: a
    variant of the file at `path` to load instead of it (relative paths and references
    still resolve from the file's folder; a domain move loads its config with the
    provider line swapped)."""
    path = path or default_path()
    name = str(path)
    if text is None:
        text = read_config_text(path)
    try:
        located = load_located(text, name)
    except YamlSyntaxError as exc:
        raise ConfigError([Issue(name, exc.pos, exc.message, exc.hint, exc.path)]) from None

    col = Collector(name, located)
    for dup_path, first, second in located.duplicates:
        col.add(dup_path, f"duplicate key {dup_path[-1]!r} (first at line {first.line})",
                pos=second)
    if not isinstance(located.data, dict):
        col.add((), "the config must be a mapping with `providers:` and `domains:`")
        col.raise_if_any()

    complete = True  # False: parts of the file were left out after shape errors
    try:
        cfg = ConfigFile.model_validate(located.data)
    except ValidationError as exc:
        _report_pydantic(exc, col, ConfigFile, ())
        saved = salvage(ConfigFile, located.data, exc)
        if not isinstance(saved.model, ConfigFile):
            col.raise_if_any()
            raise  # pragma: no cover - raise_if_any always raises here
        # Go on with what was well-formed, so the checks below report their
        # problems in the same run; messages still point at the file's lines.
        cfg = saved.model
        col.translate = saved.original
        complete = not any(p[0] in ("domains", "providers") for p in saved.dropped)

    resolver = Resolver(path.parent.resolve(), deferred=not secrets)
    providers: dict[str, ProviderInstance] = {}
    classes: dict[str, type[Provider]] = {}
    for pname, pc in cfg.providers.items():
        ppath: Path_ = ("providers", pname)
        if pc.type not in provider_types():
            col.add((*ppath, "type"), f"unknown provider type {pc.type!r}",
                    did_you_mean(pc.type, provider_types())
                    or f"known types: {', '.join(provider_types())}")
            continue
        cls = provider_class(pc.type)
        raw = dict(pc.model_extra or {})
        try:
            settings = cls.settings_model.model_validate(raw)
        except ValidationError as exc:
            _report_pydantic(exc, col, cls.settings_model, ppath)
            continue
        for fname in getattr(cls.settings_model, "secret_fields", ()):
            value = getattr(settings, fname, None)
            if value is not None:
                try:
                    resolver.resolve(str(value))
                except RefError as err:
                    col.add((*ppath, fname), str(err), err.hint)
        classes[pname] = cls
        providers[pname] = ProviderInstance(pname, pc.type, cls, settings, {"type": pc.type, **raw})

    desired = build_desired(cfg, col, resolver, classes, complete=complete)
    col.raise_if_any()
    return Config(path, cfg, located, providers, desired, resolver)


# --- pydantic errors -> positioned issues ---------------------------------------------


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last element of `loc` (for did-you-mean)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(tp: Any, part: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        f = tp.model_fields.get(part)
        return f.annotation if f else None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            got = _unwrap(a, part)
            if got is not None:
                return got
        return None
    if origin is list and isinstance(part, int):
        return args[0]
    if origin is dict and isinstance(part, str):
        return args[1]
    return None


def _report_pydantic(
    exc: ValidationError, col: Collector, model: type[BaseModel], prefix: Path_
) -> None:
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and "[" in p))
        path = (*prefix, *loc)
        etype = err["type"]
        if etype == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            allowed = sorted(owner.model_fields) if owner else []
            key = str(loc[-1])
            hint = did_you_mean(key, allowed) or (
                f"allowed here: {', '.join(allowed)}" if allowed else None)
            col.add(path, f"unknown key {key!r}", hint, at_key=True)
        elif etype == "missing":
            col.add(path[:-1], f"missing required key {loc[-1]!r}")
        elif etype == "literal_error":
            shown = "" if _sensitive(path) else f" {err.get('input')!r}"
            col.add(path, f"invalid value{shown}: {err['msg'].lower()}",
                    spelling_hint(path, err.get("input")))
        elif etype == "value_error":
            col.add(path, str(err.get("ctx", {}).get("error", err["msg"])))
        else:
            got = err.get("input")
            # never echo what may be a secret typed into the wrong place
            shown = "" if _sensitive(path) else f" (got {_shown(got)})"
            hint = ("a share is a fraction of a domain's existing objects: 0.3 means 30 %"
                    if str(path[-1]).endswith("_share") else None)
            col.add(path, _expected(etype, err, path) + shown, hint)


# What a list field holds, in the words of docs/config.md.
_LISTS = {
    "aliases": "a list of local parts, e.g. [info, sales]",
    "forwards": "a list of addresses, e.g. [bob@example.net]",
    "destinations": "a list of local parts or addresses, e.g. [alice, bob@example.net]",
    "catch_all": "a local part, an address, or a list of them",
    "mailboxes": "a list of mailboxes, each `- local_part: NAME`",
    "identities": "a list of identities, each `- local_part: NAME`",
    "rewrites": "a list of rewrites, each with name, local_part_rule and destinations",
    "tags": "a list of labels, e.g. [staff, vip]",
    "unmanaged": "a list of local-part globs, e.g. [\"tmp.*\"]",
}
_TYPES = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "string": "text",
    "dict": "a mapping (`key: value` lines)",
    "model": "a mapping (`key: value` lines)",
    "tuple": "a list",
    "list": "a list",
}


def _expected(etype: str, err: Any, path: Path_) -> str:
    ctx = err.get("ctx") or {}
    field = next((p for p in reversed(path) if isinstance(p, str)), "")
    if etype in ("tuple_type", "list_type") and field in _LISTS:
        return f"expected {_LISTS[field]}"
    bounds = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=",
              "less_than": "<"}
    if etype in bounds:
        for key in ("ge", "gt", "le", "lt"):
            if key in ctx:
                bound = ctx[key]
                if isinstance(bound, float) and bound.is_integer():
                    bound = int(bound)
                return f"expected a number {bounds[etype]} {bound}"
    if etype == "too_short" and ctx.get("min_length") == 1:
        return "expected at least one entry"
    base = etype.split("_")[0]
    if etype.endswith(("_type", "_parsing", "_attributes_type")) and base in _TYPES:
        return f"expected {_TYPES[base]}"
    return str(err["msg"]).replace("Input should be", "expected")


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    return repr(value)


def _sensitive(path: Path_) -> bool:
    last = str(path[-1]).lower() if path else ""
    return any(w in last for w in ("password", "key", "token", "secret"))
