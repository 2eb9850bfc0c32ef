"""A move's plan: the source's inventory and the target's config, before anything runs.

`move start` reads only: the source domain as `mailctl import` reads it (what
exists there, declared or not), and the target's config built from it with the
provider swapped, validated against what the target can store. Whatever it
cannot store is listed item by item; the move refuses unless the operator
accepts exactly that list, which then stays in the project and its report.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailctl.domain.moveproject import MoveError, Project

if TYPE_CHECKING:
    from mailctl.config.load import Config

SOURCE, TARGET, SECRETS = "source.yaml", "target.yaml", "secrets.tsv"


def _strip(doc: dict[str, Any], path: tuple[Any, ...]) -> Any:
    """Remove what `path` points at in `doc`; the removed value (None if not there)."""
    node: Any = doc
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    try:
        return node.pop(path[-1])
    except (KeyError, IndexError, TypeError, AttributeError):
        return None


def target_config(config: Config, domain: str, target: str, inventory: str,
                  mx: list[str] | None, accept_losses: bool
                  ) -> tuple[str, list[dict[str, Any]]]:
    """The target's config text, and what it leaves out (with accept_losses; else a
    ConfigError lists it). The user's file with this domain's block replaced by the
    inventory (what exists at the source, declared or not), the provider swapped, the
    domain's `dns:` block kept (`mx` replaces its MX hosts)."""
    import copy

    import yaml

    from mailctl.config.errors import ConfigError
    from mailctl.config.load import load_config
    from mailctl.dns.settings import PROVIDER_PROFILES

    raw = yaml.safe_load(config.path.read_text())
    rawname = config.desired.raw_domain[domain]
    src_block = dict(raw["domains"][rawname] or {})
    inv = yaml.safe_load(inventory)["domains"]
    block: dict[str, Any] = dict(next(iter(inv.values())))
    block["provider"] = target
    dns = copy.deepcopy(src_block.get("dns")) or {}
    src_type = config.providers[src_block["provider"]].type_name
    if dns.get("profile") == PROVIDER_PROFILES.get(src_type):
        dns.pop("profile")  # the source's own profile: the target's type decides
    if mx:
        dns["mx_hosts"] = list(mx)
    if dns:
        block["dns"] = dns
    raw["domains"] = {rawname: block}
    losses: list[dict[str, Any]] = []
    for _ in range(50):
        text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
        try:
            load_config(config.path, text=text)
            return text, losses
        except ConfigError as exc:
            ours = [i for i in exc.issues if i.path[:2] == ("domains", rawname)
                    and len(i.path) > 2 and i.path[2] not in ("provider", "dns")]
            if not accept_losses or len(ours) != len(exc.issues):
                raise
            for issue in sorted(ours, key=lambda i: [str(p) for p in i.path], reverse=True):
                value = _strip(raw, issue.path)
                losses.append({"field": issue.dotted().removeprefix(f"domains.{rawname}."),
                               "problem": issue.message,
                               "value": value if isinstance(value, str | int | bool | list
                                                            | dict) else repr(value)})
    raise MoveError(f"cannot make a config for provider {target!r} from the inventory")


def start(config: Config, domain: str, target: str, root: Path, *, mx: list[str] | None = None,
          ttl: int = 300, keep_days: int = 7, maps: list[tuple[str, str]] | None = None,
          accept_losses: bool = False, jobs: int = 4) -> Project:
    """Inventory the source, plan the target, write the project; touches no provider."""
    from mailctl.domain.access import SignInError, access_for
    from mailctl.domain.backup import declared_yaml
    from mailctl.util.atomic import atomic_write

    source = config.desired.provider_of[domain]
    if target == source:
        raise MoveError(f"{domain} is already at provider {target!r} (expected another "
                        "provider of the config)")
    state = config.provider(source).read([domain])[domain]
    if not state.exists:
        raise MoveError(f"provider {source!r} holds no domain {domain}")
    inventory = declared_yaml(config, source, state)
    text, losses = target_config(config, domain, target, inventory, mx, accept_losses)
    addresses = sorted(state.mailboxes)
    src = access_for(config, source)
    access_for(config, target)  # configured and readable: checked before anything is written
    lacking = src.missing(addresses)
    if lacking:
        raise MoveError(f"no way to sign in to {len(lacking)} mailboxes at {source!r} "
                        f"({src.describe()}): {', '.join(lacking[:10])}")
    failures = src.check(addresses, jobs * 2)
    if failures:
        raise SignInError(source, failures)
    from mailctl.util.private import private_dir

    # the files first, the state last: a start killed half-way leaves no move.json,
    # so `move start` simply runs again
    private_dir(root)
    atomic_write(root / SOURCE, inventory, 0o600)
    atomic_write(root / TARGET, text, 0o600)
    project = Project.create(root, {
        "domain": domain, "source": source, "target": target,
        "config": str(config.path.resolve()), "addresses": addresses, "ttl": ttl,
        "keep_days": keep_days, "maps": [list(m) for m in maps or []], "mx": list(mx or []),
        "losses": losses, "aliases": sorted(state.aliases)})
    project.mark("inventory", mailboxes=len(addresses), aliases=len(state.aliases),
                 losses=len(losses))
    return project


