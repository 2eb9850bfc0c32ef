"""YAML loading that remembers where every key and value came from.

PyYAML's libyaml composer gives nodes with marks at C speed; walking the node
tree ourselves (instead of `yaml.load`) costs one pass and yields a position
for any path, so every later error can say file:line:col. It also lets us
refuse duplicate keys, which `yaml.safe_load` silently overwrites.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from mailctl.errors import MailctlError

if TYPE_CHECKING:
    import yaml

Path_ = tuple[str | int, ...]

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_INT_RE = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
# No leading zeros and no exponents: `local_part: 007` or `1e3` stay text; the
# only floats a mailctl config has are shares like 0.3.
_FLOAT_RE = re.compile(r"^[-+]?((0|[1-9][0-9]*)\.[0-9]*|\.[0-9]+)$")
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_BOOLS = frozenset(("true", "True", "TRUE", "false", "False", "FALSE"))


def _resolve(kind: type[Any], value: Any, implicit: Any, yaml: Any) -> str:
    """YAML 1.2 core-schema scalars: only true/false are booleans.

    With YAML 1.1 (PyYAML's default) `local_part: no`, `on` or `y` silently
    become booleans — the Norway problem, for mailbox names. Being one set
    lookup and at most one regex per plain scalar, it is also faster than
    PyYAML's resolver table (0.10 s of a 10k-mailbox load, profiled)."""
    if kind is not yaml.ScalarNode:
        return "tag:yaml.org,2002:seq" if kind is yaml.SequenceNode else "tag:yaml.org,2002:map"
    if not implicit[0]:  # quoted: always a string
        return "tag:yaml.org,2002:str"
    if value == "<<":  # refused with its own message, not as an unknown key
        return _MERGE
    if value in _NULLS:
        return _NULL
    first = value[0]
    if first in _BOOLS_FIRST and value in _BOOLS:
        return _BOOL
    if first in _NUM_FIRST:
        if _INT_RE.match(value):
            return _INT
        if _FLOAT_RE.match(value):
            return _FLOAT
    return "tag:yaml.org,2002:str"


@cache
def _loader() -> type[Any]:
    """PyYAML is imported only on a cache miss (54 ms of a `plan`'s start-up)."""
    import yaml

    base: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return type("MailctlLoader", (base,), {
        "resolve": lambda self, kind, value, implicit: _resolve(kind, value, implicit, yaml)})


_BOOLS_FIRST = frozenset("tTfF")
_NUM_FIRST = frozenset("0123456789+-.")


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
    text: str | None = None  # set when the data came from the cache: compose on demand

    def _node(self, path: Path_) -> tuple[yaml.Node | None, yaml.Node | None]:
        """(key node, value node) at `path`; as deep as the path goes."""
        import yaml

        if self.root is None and self.text is not None:
            self.root = yaml.compose(self.text, Loader=_loader())
            self.text = None
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


class YamlSyntaxError(MailctlError):
    def __init__(self, message: str, pos: Pos | None, hint: str | None = None,
                 path: Path_ = ()) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos
        self.hint = hint
        self.path = path


def _scalar(node: yaml.ScalarNode) -> Any:
    tag = node.tag
    if tag == _NULL:
        return None
    if tag == _BOOL:
        return node.value in ("true", "True", "TRUE")
    if tag == _INT:
        return int(node.value) if len(node.value) <= _MAX_INT_DIGITS else node.value
    if tag == _FLOAT:
        return float(node.value)
    # Everything else (explicit tags included) stays text: config values are text.
    return node.value


def _mark(node: yaml.Node) -> Pos:
    return Pos(node.start_mark.line + 1, node.start_mark.column + 1)


def load_located(text: str, name: str = "<config>") -> Located:
    from mailctl.config import cache

    hit = cache.get(text)
    if isinstance(hit, tuple) and len(hit) == 2:
        data, dups = hit
        try:
            return Located(data=data, text=text, duplicates=[
                (tuple(p), Pos(*a), Pos(*b)) for p, a, b in dups])
        except (TypeError, ValueError):
            pass  # not what `put` stores: parse instead
    located = _parse(text)
    cache.put(text, (located.data, [
        (list(p), (a.line, a.col), (b.line, b.col)) for p, a, b in located.duplicates]))
    return located


# Bounds for alias expansion. Aliased values are shared, not copied, so memory
# stays linear in the file; what grows is the data every later step walks
# (validation, the semantic checks). A real config that shares a settings block
# or a destination list across thousands of mailboxes stays far below these; a
# "billion laughs" file (nine levels of nine aliases) is refused after a few
# hundred nodes of work instead of running for minutes and gigabytes.
MAX_ALIAS_NODES = 100_000  # values reached through aliases, in total
MAX_DEPTH = 64  # nesting of mappings and lists, aliases expanded (real configs: < 10)
_MAX_INT_DIGITS = 1000  # int() refuses > 4300 digits; longer "numbers" stay text


class _Budget:
    """What `walk` spends, and where the parse stands (for error positions)."""

    __slots__ = ("alias_nodes", "built", "depth_of", "open", "size_of")

    def __init__(self) -> None:
        self.alias_nodes = 0
        self.built: dict[int, Any] = {}  # id(container node) -> its Python value
        self.size_of: dict[int, int] = {}  # id -> values in it, aliases expanded
        self.depth_of: dict[int, int] = {}  # id -> nesting below it, aliases expanded
        self.open: set[int] = set()  # containers being built right now


def _parse(text: str) -> Located:
    import yaml

    try:
        root = yaml.compose(text, Loader=_loader())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        pos = Pos(mark.line + 1, mark.column + 1) if mark else None
        problem = exc.problem or str(exc)
        hint = None
        if "tab" in problem.lower():
            hint = "YAML indentation must use spaces, not tabs"
        elif "mapping values are not allowed" in problem:
            hint = "quote values that contain ': ' or check the indentation of this line"
        elif "nesting depth" in problem:
            hint = f"a mailctl config nests a few levels deep; at most {MAX_DEPTH} are read"
        raise YamlSyntaxError(f"invalid YAML: {problem}", pos, hint) from None
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"invalid YAML: {exc}", None) from None

    out = Located(data=None, root=root)
    if root is None:
        out.data = {}
        return out
    stack: list[str | int] = []  # the current path, for error reports
    budget = _Budget()

    def where(node: yaml.Node, at: Pos | None) -> tuple[Pos, Path_]:
        return (at or _mark(node)), tuple(stack)

    def reuse(node: yaml.Node, at: Pos | None) -> Any:
        """A container met again: an alias (or a recursion). Shared, and paid for."""
        nid = id(node)
        if nid in budget.open:
            pos, path = where(node, at)
            raise YamlSyntaxError(
                f"recursive YAML alias: the value anchored at line {_mark(node).line} "
                "contains an alias to itself", pos,
                "an alias must refer to a value defined before it, outside itself", path)
        budget.alias_nodes += budget.size_of[nid]
        if budget.alias_nodes > MAX_ALIAS_NODES:
            pos, path = where(node, at)
            raise YamlSyntaxError(
                f"YAML aliases expand to more than {MAX_ALIAS_NODES} values", pos,
                "a config this size needs no such repetition; this looks like an "
                "alias bomb (\"billion laughs\")", path)
        if len(stack) + budget.depth_of[nid] > MAX_DEPTH:
            pos, path = where(node, at)
            raise YamlSyntaxError(f"YAML nests deeper than {MAX_DEPTH} levels "
                                  "(aliases expanded)", pos, None, path)
        return budget.built[nid]

    def walk(node: yaml.Node, at: Pos | None = None) -> tuple[Any, int, int]:
        """(value, values in it, nesting depth below it)."""
        if isinstance(node, yaml.ScalarNode):
            return _scalar(node), 1, 0
        nid = id(node)
        if nid in budget.built or nid in budget.open:
            return reuse(node, at), budget.size_of[nid], budget.depth_of[nid]
        if len(stack) >= MAX_DEPTH:
            pos, path = where(node, at)
            raise YamlSyntaxError(f"YAML nests deeper than {MAX_DEPTH} levels", pos,
                                  "a mailctl config nests a few levels deep", path)
        budget.open.add(nid)
        size, depth = 1, 0
        result: Any
        if isinstance(node, yaml.MappingNode):
            result = {}
            first_key: dict[str, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == _MERGE:
                    raise YamlSyntaxError(
                        "YAML merge keys (<<) are not supported", _mark(key_node),
                        "repeat the settings, or set them once at the domain level",
                        tuple(stack))
                key = _scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
                if not isinstance(key, str | int | bool) or key is None:
                    raise YamlSyntaxError("mapping keys must be plain text", _mark(key_node),
                                          None, tuple(stack))
                skey = key if isinstance(key, str) else str(key)
                if skey in result:
                    out.duplicates.append(
                        ((*stack, skey), _mark(first_key[skey]), _mark(key_node))
                    )
                    continue
                first_key[skey] = key_node
                stack.append(skey)
                value, n, d = walk(value_node, _mark(key_node))
                stack.pop()
                result[skey] = value
                size += n
                depth = max(depth, d + 1)
        else:
            assert isinstance(node, yaml.SequenceNode)
            result = []
            for i, item in enumerate(node.value):
                stack.append(i)
                value, n, d = walk(item, None)
                stack.pop()
                result.append(value)
                size += n
                depth = max(depth, d + 1)
        budget.open.discard(nid)
        budget.built[nid] = result
        budget.size_of[nid] = size
        budget.depth_of[nid] = depth
        return result, size, depth

    out.data = walk(root)[0]
    return out
