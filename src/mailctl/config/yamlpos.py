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
    """Plain Python data, plus the node tree to find any path's position in.

    Positions are looked up only when there is an error to report, by walking
    the nodes along the path: a 10k-mailbox file has 50k nodes and building a
    position table for all of them cost a third of a no-change `plan`."""

    data: Any
    root: yaml.Node | None = None
    duplicates: list[tuple[Path_, Pos, Pos]] = field(default_factory=list)

    def _node(self, path: Path_) -> tuple[yaml.Node | None, yaml.Node | None]:
        """(key node, value node) at `path`; as deep as the path goes."""
        node, key_node = self.root, None
        for part in path:
            nxt = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and str(_scalar(k)) == str(part):
                        key_node, nxt = k, v
                        break
            elif (isinstance(node, yaml.SequenceNode) and isinstance(part, int)
                  and 0 <= part < len(node.value)):
                key_node, nxt = None, node.value[part]
            if nxt is None:
                return key_node, node
            node = nxt
        return key_node, node

    def pos(self, path: Path_, prefer_key: bool = False) -> Pos | None:
        """Position of `path` (its key with `prefer_key`), or of its deepest parent."""
        key_node, node = self._node(tuple(path))
        target = key_node if (prefer_key and key_node is not None) else node
        return _mark(target) if target is not None else None


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

    out = Located(data=None, root=root)
    if root is None:
        out.data = {}
        return out
    stack: list[str | int] = []  # the current path, for duplicate-key reports only

    def walk(node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node)
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            first_key: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise YamlSyntaxError(
                        "YAML merge keys (<<) are not supported", _mark(key_node),
                        "repeat the settings, or set them once at the domain level",
                    )
                key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str | int | bool) or key is None:
                    raise YamlSyntaxError("mapping keys must be plain text", _mark(key_node))
                skey = key if isinstance(key, str) else str(key)
                if skey in result:
                    out.duplicates.append(
                        ((*stack, skey), _mark(first_key[skey]), _mark(key_node))
                    )
                    continue
                first_key[skey] = key_node
                stack.append(skey)
                result[skey] = walk(value_node)
                stack.pop()
            return result
        assert isinstance(node, yaml.SequenceNode)
        items = []
        for i, item in enumerate(node.value):
            stack.append(i)
            items.append(walk(item))
            stack.pop()
        return items

    out.data = walk(root)
    return out


def load_file(path: Path) -> Located:
    return load_located(path.read_text(encoding="utf-8"), str(path))
