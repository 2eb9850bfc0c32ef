"""Changes to declared objects, produced as an edit of mailctl.yaml, never applied.

The YAML is the source of truth: the console turns "add a mailbox" or "change
a quota" into a new version of the file (its comments, order and style kept,
because only the affected lines are touched) and a unified diff to review and
commit. The edit works on PyYAML's node positions, and the result is parsed
and validated against the config schema before anyone sees it.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import yaml


class EditError(ValueError):
    """The change cannot be written into this file (the message says why)."""


@dataclass(frozen=True, slots=True)
class YamlChange:
    filename: str
    summary: str
    old: str
    new: str

    @property
    def diff(self) -> str:
        return "".join(difflib.unified_diff(
            self.old.splitlines(keepends=True), self.new.splitlines(keepends=True),
            fromfile=f"a/{self.filename}", tofile=f"b/{self.filename}"))


def _compose(text: str) -> yaml.Node:
    import yaml

    from mailctl.config.yamlpos import _loader

    try:
        root = yaml.compose(text, Loader=_loader())
    except yaml.YAMLError as exc:
        raise EditError(f"the config file does not parse: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise EditError("the config file is not a mapping")
    return root


def _get(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    import yaml

    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k, v
    return None


def _scalar(value: str) -> str:
    """A YAML scalar for `value`: plain when that reads back as the same text."""
    import re

    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", value) and value.lower() not in (
            "true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"):
        return value
    return json.dumps(value, ensure_ascii=False)


def _line_after(lines: list[str], node: yaml.Node) -> int:
    """Index of the first line after `node` (block style: its end mark)."""
    end = node.end_mark
    return end.line if end.column == 0 else end.line + 1


def _domain_node(root: yaml.Node, domain_key: str) -> tuple[yaml.Node, yaml.Node]:
    import yaml

    found = _get(root, "domains")
    if found is None or not isinstance(found[1], yaml.MappingNode):
        raise EditError("the config has no `domains:` mapping")
    dom = _get(found[1], domain_key)
    if dom is None or not isinstance(dom[1], yaml.MappingNode):
        raise EditError(f"domain {domain_key} is not a mapping in the config")
    if dom[1].flow_style:
        raise EditError(f"domain {domain_key} is written in flow style {{...}}; edit it by hand")
    return dom


def add_mailbox(text: str, filename: str, domain_key: str, local_part: str,
                fields: dict[str, str], config_path: Path | None = None) -> YamlChange:
    """Append a mailbox to `domains.<domain_key>.mailboxes`."""
    import yaml

    root = _compose(text)
    _, dom = _domain_node(root, domain_key)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    body = [("local_part", local_part), *fields.items()]
    mb = _get(dom, "mailboxes")
    if mb is None or (isinstance(mb[1], yaml.ScalarNode) and mb[1].value in ("", "~", "null")):
        indent = " " * dom.value[0][0].start_mark.column
        item = _item(indent + "  ", body)
        if mb is not None:  # `mailboxes:` with nothing (null): replace that line
            at = mb[0].start_mark.line
            lines[at:at + 1] = [f"{indent}mailboxes:\n", *item]
        else:
            lines[_line_after(lines, dom):_line_after(lines, dom)] = [
                f"{indent}mailboxes:\n", *item]
    else:
        seq = mb[1]
        if not isinstance(seq, yaml.SequenceNode) or seq.flow_style:
            raise EditError(f"domains.{domain_key}.mailboxes is not a block list; add "
                            f"`- local_part: {local_part}` by hand")
        for existing in seq.value:
            lp = _get(existing, "local_part")
            if lp is not None and str(lp[1].value).lower() == local_part.lower():
                raise EditError(f"{local_part}@{domain_key} is already declared")
        if seq.value:
            first = seq.value[0]
            line = lines[first.start_mark.line]
            dash = line.rfind("-", 0, first.start_mark.column)
            indent = " " * max(dash, 0)
            at = _line_after(lines, seq.value[-1])
        else:
            indent = " " * (mb[0].start_mark.column + 2)
            at = _line_after(lines, seq)
        lines[at:at] = _item(indent, body)
    new = "".join(lines)
    summary = f"add mailbox {local_part}@{domain_key}"
    return _checked(YamlChange(filename, summary, text, new), config_path)


def _item(indent: str, body: list[tuple[str, str]]) -> list[str]:
    out = []
    for i, (key, value) in enumerate(body):
        lead = f"{indent}- " if i == 0 else f"{indent}  "
        out.append(f"{lead}{key}: {_scalar(value)}\n")
    return out


def set_mailbox_field(text: str, filename: str, domain_key: str, local_part: str,
                      key: str, value: str, config_path: Path | None = None) -> YamlChange:
    """Set one scalar field (e.g. `quota`) of a declared mailbox."""
    import yaml

    root = _compose(text)
    _, dom = _domain_node(root, domain_key)
    mb = _get(dom, "mailboxes")
    if mb is None or not isinstance(mb[1], yaml.SequenceNode):
        raise EditError(f"domains.{domain_key} declares no mailboxes")
    for item in mb[1].value:
        lp = _get(item, "local_part")
        if lp is None or str(lp[1].value).lower() != local_part.lower():
            continue
        if not isinstance(item, yaml.MappingNode) or item.flow_style:
            raise EditError(f"{local_part}@{domain_key} is written in flow style; edit it "
                            "by hand")
        current = _get(item, key)
        if current is not None:
            node = current[1]
            if not isinstance(node, yaml.ScalarNode):
                raise EditError(f"{key} of {local_part}@{domain_key} is not a plain value")
            new = text[:node.start_mark.index] + _scalar(value) + text[node.end_mark.index:]
        else:
            lines = text.splitlines(keepends=True)
            col = lp[0].start_mark.column
            at = lp[0].start_mark.line + 1
            lines[at:at] = [f"{' ' * col}{key}: {_scalar(value)}\n"]
            new = "".join(lines)
        summary = f"set {key} of {local_part}@{domain_key} to {value}"
        return _checked(YamlChange(filename, summary, text, new), config_path)
    raise EditError(f"{local_part}@{domain_key} is not declared in the config")


def _checked(change: YamlChange, config_path: Path | None = None) -> YamlChange:
    """The new text must parse and pass the schema, or nobody gets to see it; and,
    given the config's path, everything `mailctl validate` checks (provider
    capabilities, references), by loading it from a private file beside the
    config so that relative references resolve the same way."""
    from pydantic import ValidationError

    from mailctl.config.schema import ConfigFile
    from mailctl.config.yamlpos import YamlSyntaxError, _parse

    try:
        data: Any = _parse(change.new).data
        ConfigFile.model_validate(data)
    except YamlSyntaxError as exc:
        raise EditError(f"the edited file would not parse ({exc.message})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise EditError(f"the edited file would not validate: {where}: {first['msg']}"
                        ) from None
    if config_path is not None:
        _load_beside(change.new, config_path)
    return change


def _load_beside(text: str, config_path: Path) -> None:
    import contextlib
    import os
    import tempfile

    from mailctl.config.errors import ConfigError
    from mailctl.config.load import load_config

    try:
        fd, name = tempfile.mkstemp(prefix=".mailctl-proposal-", suffix=".yaml",
                                    dir=config_path.parent)
    except OSError:
        return  # a read-only config folder: the schema check above is what we can do
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_config(Path(name)).close()
    except ConfigError as exc:
        issue = exc.issues[0]
        raise EditError(f"the change would not validate: {issue.message}"
                        + (f" ({issue.hint})" if issue.hint else "")) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
