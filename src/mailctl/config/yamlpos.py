"""YAML loading that remembers where every key and value came from.

PyYAML's libyaml composer gives nodes with marks at C speed; walking the node
tree ourselves (instead of `yaml.load`) costs one pass and yields a position
for any path, so every later error can say file:line:col. It also lets us
refuse duplicate keys, which `yaml.safe_load` silently overwrites.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Path_ = tuple[str | int, ...]

try:
    _Loader: type[Any] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - wheels ship libyaml
    _Loader = yaml.SafeLoader


@dataclass(frozen=True, slots=True)
class Pos:
    line: int  # 1-based
    col: int  # 1-based


@dataclass(slots=True)
class Located:
    """Plain Python data plus the positions of its values and mapping keys."""

    data: Any
    # (line, col) tuples, not Pos objects: 10k-mailbox files have 50k nodes and
    # positions are only read when there is an error to report.
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    duplicates: list[tuple[Path_, Pos, Pos]] = field(default_factory=list)

    def pos(self, path: Path_, prefer_key: bool = False) -> Pos | None:
        """Nearest known position for `path`, walking up to a parent if needed."""
        p = tuple(path)
        while True:
            found = None
            if prefer_key and p in self.keys:
                found = self.keys[p]
            elif p in self.values:
                found = self.values[p]
            elif p in self.keys:
                found = self.keys[p]
            if found is not None:
                return Pos(found[0] + 1, found[1] + 1)
            if not p:
                return None
            p = p[:-1]


class YamlSyntaxError(Exception):
    def __init__(self, message: str, pos: Pos | None, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint


_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"

_constructor = yaml.constructor.SafeConstructor()


def _scalar(node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag == _NULL:
        return None
    if tag in (_BOOL, _INT, _FLOAT):
        return _constructor.construct_object(node)
    # Everything else (timestamps, binary, ...) stays a string: config values are text.
    return node.value


def _mark(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def load_located(text: str, name: str = "<config>") -> Located:
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or str(exc)
        hint = None
        if "tab" in problem.lower():
            hint = "YAML indentation must use spaces, not tabs"
        elif "mapping values are not allowed" in problem:
            hint = "quote values that contain ': ' or check the indentation of this line"
        raise YamlSyntaxError(f"invalid YAML: {problem}", pos, hint) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", None) from None

    out = Located(data=None)
    if root is None:
        out.data = {}
        return out

    values, keys = out.values, out.keys

    def walk(node: yaml.Node, path: Path_) -> Any:
        mark = node.start_mark
        values[path] = (mark.line, mark.column)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlSyntaxError(
                        "YAML merge keys (<<) are not supported", _mark(key_node),
                        "repeat the settings, or set them once at the domain level",
                    )
                key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str | int | bool) or key is None:
                    raise YamlSyntaxError("mapping keys must be plain text", _mark(key_node))
                skey = str(key) if not isinstance(key, str) else key
                sub = (*path, skey)
                if skey in result:
                    first = keys[sub]
                    out.duplicates.append(
                        (sub, Pos(first[0] + 1, first[1] + 1), _mark(key_node))
                    )
                    continue
                km = key_node.start_mark
                keys[sub] = (km.line, km.column)
                result[skey] = walk(value_node, sub)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [walk(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        return _scalar(node)

    out.data = walk(root, ())
    return out


def load_file(path: Path) -> Located:
    return load_located(path.read_text(encoding="utf-8"), str(path))
