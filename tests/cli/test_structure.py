"""The code's shape, as the guide promises it: no two modules import each other.

A pair that imports each other (even inside a function) has no clear owner of what
it shares, and breaks as soon as one side's import moves to the top. Imports for
the type checker alone (`if TYPE_CHECKING:`) do not count: they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import mailctl

SRC = Path(mailctl.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _runtime_imports(path: Path, known: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {id(sub) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for sub in ast.walk(node)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m in known}


def test_no_two_modules_import_each_other() -> None:
    known = _modules()
    imports = {name: _runtime_imports(path, known) for name, path in known.items()}
    pairs = sorted({tuple(sorted((a, b))) for a, deps in imports.items() for b in deps
                    if a != b and a in imports[b]
                    and not (a.startswith(b + ".") or b.startswith(a + "."))})
    assert pairs == [], "modules that import each other: " + ", ".join(
        f"{a} <-> {b}" for a, b in pairs)
