"""`jobs status` for people: a summary line, the accounts table, failures with advice."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _eta(s: float | None) -> str:
    if s is None:
        return "unknown yet"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def renderable(st: dict[str, Any], all_accounts: bool) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    states = "  ".join(f"{k} {v}" for k, v in st["states"].items() if v)
    head = Text(
        f"{st['accounts_total']} accounts on {st['queue']}: {states or 'none'}\n"
        f"{st['messages']} messages, {_size(st['bytes'])} in {st['elapsed_seconds']:.0f} s "
        f"({st['messages_per_second']:.1f} msg/s, {_size(st['bytes_per_second'])}/s); "
        f"ETA {_eta(st['eta_seconds'])}; {st['workers']} live workers")
    table = Table(box=None, pad_edge=False)
    for col in ("account", "state", "messages", "bytes", "runs", "worker", "failure"):
        table.add_column(col, justify="right" if col in ("messages", "bytes", "runs")
                         else "left", overflow="fold")
    shown = [a for a in st["accounts"]
             if all_accounts or a["state"] in ("copying", "retrying", "failed")]
    for a in shown[:200]:
        table.add_row(a["label"], a["state"], str(a["messages"]), _size(a["bytes"]),
                      str(a["runs"]), a["worker"] or "", a["failure"] or "")
    parts: list[Any] = [head]
    if shown:
        parts.append(table)
    if len(shown) > 200:
        parts.append(Text(f"... and {len(shown) - 200} more (--json lists all)"))
    for f in st["failures"][:20]:
        parts.append(Text(f"{f['label']}: {f['failure']} ({f['state']}): {f['words']}\n"
                          f"  what to do: {f['advice']}"))
    return Group(*parts)


def render(st: dict[str, Any], all_accounts: bool) -> None:
    from rich.console import Console

    Console(soft_wrap=False).print(renderable(st, all_accounts))


def watch(collect: Callable[[], dict[str, Any]], interval: float,
          all_accounts: bool) -> dict[str, Any]:
    from rich.live import Live

    st = collect()
    with Live(renderable(st, all_accounts), refresh_per_second=4) as live:
        while sum(st["states"][s] for s in ("queued", "copying", "retrying")):
            time.sleep(interval)
            st = collect()
            live.update(renderable(st, all_accounts))
    return st
