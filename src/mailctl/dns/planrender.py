"""A DNS plan for people (rich table, Markdown for a pull request) and for machines (JSON).

Each change says why it is there (which profile asks for the record, or which
no longer does), and a shared TXT set lists the values that are kept as they
are, so a reviewer sees that the site verification next to SPF survives.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from mailctl.dns.publish import Change, DnsPlan, ZonePlan
    from mailctl.dns.serverrelay import RelayChange

_SIGN = {"create": "+", "update": "~", "delete": "-"}
_STYLE = {"create": "green", "update": "yellow", "delete": "red"}


def plan_json(plan: DnsPlan) -> str:
    return json.dumps(plan.as_dict(), indent=2)


def _ttl(c: Change) -> str:
    if c.action == "update" and c.old_ttl != c.new_ttl:
        return f"{c.old_ttl} → {c.new_ttl}"
    return str(c.new_ttl if c.new_ttl is not None else c.old_ttl)


SHOWN = 72  # longer values (DKIM keys) are shortened for people; --json has them whole


def _short(value: str) -> str:
    """A DKIM key is 400 characters nobody reviews by eye, and wrapping them made a
    100-domain table take 21 s to lay out (measured); the start and length identify it."""
    if len(value) <= SHOWN:
        return value
    return f"{value[:SHOWN - 16]}…{value[-8:]} ({len(value)} chars)"


def _values(c: Change) -> list[str]:
    """Lines of the value column: removed with -, added with +, unchanged plain."""
    lines = []
    for v in c.old:
        if v not in c.new and v not in c.kept:
            lines.append(f"- {_short(v)}")
    for v in c.new:
        if v not in c.old and v not in c.kept:
            lines.append(f"+ {_short(v)}")
    if c.action == "update" and not lines:
        lines = [f"  {_short(v)}" for v in c.new if v not in c.kept]
    return lines


def _summary(zone: ZonePlan) -> str:
    n = zone.counts()
    parts = [f"{n[a]} to {a}" for a in ("create", "update", "delete") if n[a]]
    what = ", ".join(parts) or "no changes"
    return (f"{zone.zone} at DNS host {zone.host} ({zone.host_class}): {what}; "
            f"{zone.managed} mail record(s) found, {zone.foreign} other record(s) left alone")


TABLE_ROWS = 100  # past this, one plain line per value: rich lays a table out at ~10 ms a row


def _compact(zone: ZonePlan, out: list[str]) -> None:
    for c in zone.changes:
        values = _values(c) or [""]
        why = c.why + "".join(f"; kept: {_short(k)}" for k in c.kept)
        out.append(f"  {_SIGN[c.action]} {c.name} {c.rtype} {_ttl(c)}  {values[0]}  # {why}")
        out += [f"      {v}" for v in values[1:]]


def plan_table(plan: DnsPlan, console: Console) -> None:
    from rich.table import Table
    from rich.text import Text

    compact = sum(len(z.changes) for z in plan.zones) > TABLE_ROWS
    for zone in plan.zones:
        if compact:  # plain text, written as one block
            lines = [_summary(zone)]
            _compact(zone, lines)
            lines += [f"  not published: {n}" for n in zone.unpublished]
            console.file.write("\n".join(lines) + "\n")
            continue
        console.print(f"[bold]{_summary(zone)}[/]")
        if zone.changes:
            table = Table(show_lines=True)
            for column in ("", "Name", "Type", "TTL", "Values", "Why / kept as is"):
                table.add_column(column, overflow="fold")
            for c in zone.changes:
                why = c.why + "".join(f"\nkept: {_short(k)}" for k in c.kept)
                table.add_row(Text(_SIGN[c.action], style=_STYLE[c.action]), c.name, c.rtype,
                              _ttl(c), "\n".join(_values(c)), why)
            console.print(table)
        for note in zone.unpublished:
            console.print(f"  [dim]not published:[/] {note}")
    for domain in plan.skipped:
        console.print(f"[dim]{domain}: no DNS host configured (dns.host), not published[/]")
    if plan.server:
        console.print("[bold]mail server's outbound relay (docker-mailserver relay files)[/]")
        for rc in plan.server:
            console.print(f"  ~ {_relay_line(rc)}")
    for note in plan.notes:
        console.print(f"  [dim]{note}[/]")
    if plan.has_changes:
        console.print(f"plan checksum {plan.checksum}  (dns apply --checksum applies exactly "
                      "this plan)")
    else:
        console.print("No changes: the DNS hosts already publish what the config says.")


def _relay_line(c: RelayChange) -> str:
    creds = {"set": "credentials set", "changed": "credentials changed",
             "removed": "credentials removed", "unchanged": "credentials unchanged",
             "none": "no credentials"}[c.credentials]
    ref = f" from {c.password_ref}" if c.password_ref and c.credentials in ("set", "changed") \
        else ""
    return (f"{c.domain}: relay {c.old or 'none'} → {c.new or 'none'} ({c.relay or 'no relay'}"
            f"; {creds}{ref}) in {c.directory}")


def plan_markdown(plan: DnsPlan) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", "<br>")

    out = ["## mailctl dns plan", ""]
    for zone in plan.zones:
        out += [f"### {zone.zone}", "", _summary(zone), ""]
        if zone.changes:
            out += ["| | Name | Type | TTL | Values | Why / kept as is |",
                    "| --- | --- | --- | --- | --- | --- |"]
            for c in zone.changes:
                why = c.why + "".join(f"\nkept: {k}" for k in c.kept)
                out.append(f"| {_SIGN[c.action]} | {cell(c.name)} | {c.rtype} | {cell(_ttl(c))} "
                           f"| {cell(chr(10).join(f'`{v}`' for v in _values(c)))} "
                           f"| {cell(why)} |")
            out.append("")
        out += [f"- not published: {n}" for n in zone.unpublished]
        if zone.unpublished:
            out.append("")
    out += [f"- {d}: no DNS host configured, not published" for d in plan.skipped]
    if plan.server:
        out += ["", "### Mail server's outbound relay", ""]
        out += [f"- {_relay_line(c)}" for c in plan.server]
        out.append("")
    out += [f"- {n}" for n in plan.notes]
    out.append(f"Checksum: `{plan.checksum}`" if plan.has_changes else "No changes.")
    return "\n".join(out) + "\n"
