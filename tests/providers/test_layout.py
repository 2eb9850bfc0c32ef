"""The providers package keeps one home per helper and no import cycles (STYLE.md 3).

Read from the source with `ast`, so an import hidden under TYPE_CHECKING or inside a
function counts too: either one still makes two modules depend on each other."""

from __future__ import annotations

import ast
from pathlib import Path

import mailctl

SRC = Path(mailctl.__file__).parent
PROVIDERS = SRC / "providers"


def _module(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_two_provider_modules_import_each_other() -> None:
    modules = {_module(p): p for p in PROVIDERS.rglob("*.py")}
    edges = {name: {m for m in _imports(path) if m in modules and m != name}
             for name, path in modules.items()}
    # A package's __init__ re-exporting its own modules is the one allowed direction.
    cycles = sorted((a, b) for a, deps in edges.items() for b in deps
                    if a in edges.get(b, set()) and a < b
                    and not (b.startswith(a + ".") or a.startswith(b + ".")))
    assert cycles == []
    legacy = edges["mailctl.providers.stalwart.legacy"]
    assert "mailctl.providers.stalwart.provider" not in legacy


def test_shared_helpers_have_one_home() -> None:
    homes: dict[str, list[str]] = {}
    for path in [*PROVIDERS.rglob("*.py"), SRC / "provision" / "plan.py", SRC / "model.py"]:
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in (
                    "norm_addresses", "comparable"):
                homes.setdefault(node.name.lstrip("_"), []).append(_module(path))
    assert homes == {"norm_addresses": ["mailctl.providers.base"],
                     "comparable": ["mailctl.providers.base"]}
    for path in PROVIDERS.rglob("*.py"):
        assert "from mailctl.providers.mailcow import" not in path.read_text(), path
