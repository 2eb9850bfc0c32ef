"""Files the sync commands are given and the files they create.

Given (password files, the migrate accounts list, fetch.yaml): checked before
anything else happens, and every way they can be wrong ends in a UsageError that
names the file: missing, a directory, a FIFO (which would block the read
forever), unreadable, not UTF-8, NUL bytes. YAML is loaded without aliases (an
alias bomb expands a few hundred bytes into gigabytes) and keeps line numbers
for messages.

Created (state databases and their directories): files 0600, directories
mailctl creates 0700, because a sync state names accounts, folders and message
hashes. SQLite gives a database's -wal and -shm files the database file's mode.

Standard library only, and no pathlib: this is on the lean path of a no-change
backup (see runner.py). The 0600/0700 helpers live in mailctl.util.private.
"""

from __future__ import annotations

import os
import stat

from mailctl.sync.model import UsageError

TYPE_CHECKING = False  # not from typing: ~5 ms of start-up
if TYPE_CHECKING:
    from typing import Any

PathArg = str | os.PathLike[str]


def read_text(path: PathArg, what: str, limit: int = 1 << 20) -> str:
    """The text of a file named on the command line (at most `limit` bytes)."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError as exc:
        raise UsageError(f"{what} {name}: {exc.strerror} (expected a readable file)") from None
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise UsageError(f"{what} {name} is {kind} (expected a readable file)")
    try:
        with open(name, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"{what} {name}: {exc.strerror} (expected a readable file)") from None
    if len(data) > limit:
        raise UsageError(f"{what} {name} is larger than {limit} bytes (expected a small "
                         "text file)")
    if b"\x00" in data:
        raise UsageError(f"{what} {name} holds NUL bytes (expected UTF-8 text)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise UsageError(f"{name}:{line}: {what} is not UTF-8 (expected UTF-8 text)") from None


def load_yaml(path: PathArg, what: str) -> tuple[Any, dict[int, int]]:
    """The document and, for a top-level list (or the list under `accounts:`), the line
    of each item (index -> line) for messages. Aliases are refused, not expanded."""
    import yaml

    name = os.fspath(path)
    text = read_text(path, what)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark else name
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"{where}: {problem} (expected {what} in YAML)") from None
    if node is None:
        return None, {}
    seen: set[int] = set()
    todo = [node]
    while todo:  # aliases make a node reachable twice (or in a cycle): refuse them
        n = todo.pop()
        if id(n) in seen:
            raise UsageError(f"{name}:{n.start_mark.line + 1}: YAML aliases are not "
                             "supported here (expected plain values)")
        seen.add(id(n))
        if isinstance(n.value, list):
            for v in n.value:
                todo.extend(v if isinstance(v, tuple) else [v])
    lines: dict[int, int] = {}
    items: Any = node
    if isinstance(node, yaml.MappingNode):
        items = next((v for k, v in node.value if k.value == "accounts"), None)
    if isinstance(items, yaml.SequenceNode):
        lines = {i: v.start_mark.line + 1 for i, v in enumerate(items.value)}
    try:
        return yaml.SafeLoader(text).construct_document(node), lines
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark else name
        raise UsageError(f"{where}: {getattr(exc, 'problem', exc)} (expected {what})") \
            from None


def check_output_dir(path: str, what: str) -> None:
    """`path` (a directory mailctl may create) is usable: it is a writable directory, or
    it does not exist and its parent is a writable directory. Creates nothing."""
    parent = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(path):
        if not os.path.isdir(path):
            raise UsageError(f"{what} {path} is not a directory (expected a directory)")
        if not os.access(path, os.W_OK | os.X_OK):
            raise UsageError(f"{what} {path} is not writable (expected a writable directory)")
        return
    if not os.path.isdir(parent):
        raise UsageError(f"{what} {path}: {parent} does not exist (expected an existing "
                         "parent directory)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{what} {path}: cannot create it in {parent} (expected a writable "
                         "parent directory)")
