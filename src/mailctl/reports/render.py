"""`reports show` output: a compact table for people, versioned JSON for machines, and
the per-day picture (pass/fail by source class) in the terminal or as SVG/PNG.

The SVG is written by hand (a few rectangles and labels): a plotting library
would add tens of megabytes and seconds of import for one bar chart. PNG is
that SVG through rsvg-convert (librsvg), which the Makefile installs.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from mailctl.reports.classify import CLASSES, DomainSummary

JSON_VERSION = 1
COLOURS = {"provider": "#2b6cb0", "relay": "#2f855a", "declared": "#6b46c1",
           "former": "#b7791f", "unknown": "#c53030"}
SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan", "ok": "green"}


def day_label(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()


def as_json(summaries: list[DomainSummary], since: int, rejected: list[tuple[str, int]]
            ) -> dict[str, Any]:
    return {
        "version": JSON_VERSION,
        "since": dt.datetime.fromtimestamp(since, dt.UTC).isoformat(),
        "domains": [{
            "domain": s.domain,
            "declared": s.declared,
            "reports": s.reports,
            "messages": s.messages,
            "sources": [x.as_dict() for x in s.sources],
            "verdicts": [v.as_dict() for v in s.verdicts],
            "days": [{"day": day_label(d), "class": c, "pass": ok, "fail": bad}
                     for d in sorted(s.days) for c, (ok, bad) in sorted(s.days[d].items())],
            "tls": s.tls,
            "failure_reports": s.failures,
            "dns_unknown": s.unknown_dns,
        } for s in summaries],
        "rejected": dict(rejected),
    }


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "-"


def print_summaries(summaries: list[DomainSummary], since: int, console: Any,
                    rejected: list[tuple[str, int]]) -> None:
    from rich.table import Table
    from rich.text import Text

    if not summaries:
        console.print(f"No reports since {day_label(since // 86400)}.")
    for s in summaries:
        dm = s.reports.get("dmarc", {})
        tl = s.reports.get("tlsrpt", {})
        head = (f"[bold]{s.domain}[/bold] — {dm.get('reports', 0):,} aggregate reports from "
                f"{dm.get('reporters', 0)} reporters, {s.messages:,} messages")
        if tl:
            head += f"; {tl['reports']:,} TLS reports"
        if not s.declared:
            head += " [dim](not declared in the config)[/dim]"
        console.print(head)
        if s.sources:
            t = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
            for col, just in (("source", "left"), ("class", "left"), ("messages", "right"),
                              ("SPF", "right"), ("DKIM", "right"), ("DMARC", "right")):
                t.add_column(col, justify=just)  # type: ignore[arg-type]
            for x in s.sources[:25]:
                name = x.title if x.cls != "unknown" else (
                    f"{x.name} ({x.rdns})" if x.rdns else x.name)
                dmarc = _pct(x.dmarc_pass, x.messages)
                style = "green" if x.dmarc_pass == x.messages else (
                    "red" if not x.dmarc_pass else "yellow")
                t.add_row(name, x.cls, f"{x.messages:,}", _pct(x.spf_aligned, x.messages),
                          _pct(x.dkim_aligned, x.messages), Text(dmarc, style=style))
            if len(s.sources) > 25:
                t.add_row(f"… {len(s.sources) - 25} more", "", "", "", "", "")
            console.print(t)
        for v in s.verdicts:
            line = Text("  ")
            line.append(f"{v.severity:7}", style=SEVERITY_STYLE.get(v.severity, ""))
            line.append(" " + v.text)
            console.print(line)
            if v.fix and v.severity in ("error", "warning"):
                console.print(Text(f"          fix: {v.fix}", style="dim"))
        if s.days:
            print_days(s, console)
        for u in s.unknown_dns[:3]:
            console.print(Text(f"  DNS lookup failed, classification may be incomplete: {u}",
                               style="dim"))
        console.print()
    bad = sum(n for _, n in rejected)
    if bad:
        console.print(f"{bad} report(s) rejected in this period: "
                      + ", ".join(f"{c} {n}" for c, n in rejected))


_BARS = " ▁▂▃▄▅▆▇█"


def print_days(s: DomainSummary, console: Any) -> None:
    """One row per source class, one column per day: bar height = volume, colour =
    share passing DMARC (green all, yellow some, red none)."""
    from rich.text import Text

    days = sorted(s.days)[-60:]
    peak = max((sum(c) for d in days for c in s.days[d].values()), default=1) or 1
    console.print(Text(f"  per day {day_label(days[0])} … {day_label(days[-1])} "
                       "(height: messages; green pass, yellow partly, red fail)", style="dim"))
    for cls in CLASSES:
        if not any(cls in s.days[d] for d in days):
            continue
        line = Text(f"  {cls:9}")
        for d in days:
            ok, bad = s.days[d].get(cls, [0, 0])
            total = ok + bad
            if not total:
                line.append(" ")
                continue
            level = max(1, round(8 * total / peak))
            colour = "green" if not bad else ("red" if not ok else "yellow")
            line.append(_BARS[level], style=colour)
        console.print(line)


def svg(summaries: list[DomainSummary]) -> str:
    """Per domain: a bar per day and class, passing messages stacked under failing ones."""
    width, row_h, pad = 900, 220, 40
    parts: list[str] = []
    y0 = 10
    for s in summaries:
        days = sorted(s.days)[-60:]
        if not days:
            continue
        classes = [c for c in CLASSES if any(c in s.days[d] for d in days)]
        peak = max((sum(s.days[d].get(c, [0, 0])) for d in days for c in classes),
                   default=1) or 1
        slot = (width - 2 * pad) / len(days)
        bar = max(1.0, slot / (len(classes) + 1))
        parts.append(f'<text x="{pad}" y="{y0 + 16}" font-size="14" font-weight="bold">'
                     f"{html.escape(s.domain)}: messages per day by source class "
                     "(solid: DMARC pass, hatched: fail)</text>")
        base = y0 + row_h - 30
        top = y0 + 30
        for i, d in enumerate(days):
            x = pad + i * slot
            for j, c in enumerate(classes):
                ok, bad = s.days[d].get(c, [0, 0])
                h_ok = (base - top) * ok / peak
                h_bad = (base - top) * bad / peak
                bx = x + j * bar
                colour = COLOURS[c]
                if ok:
                    parts.append(f'<rect x="{bx:.1f}" y="{base - h_ok:.1f}" width="{bar:.1f}" '
                                 f'height="{h_ok:.1f}" fill="{colour}"><title>{day_label(d)} '
                                 f"{c}: {ok} pass</title></rect>")
                if bad:
                    parts.append(f'<rect x="{bx:.1f}" y="{base - h_ok - h_bad:.1f}" '
                                 f'width="{bar:.1f}" height="{h_bad:.1f}" fill="url(#fail)" '
                                 f'stroke="{colour}"><title>{day_label(d)} {c}: {bad} fail'
                                 "</title></rect>")
            if i % max(1, len(days) // 8) == 0:
                parts.append(f'<text x="{x:.1f}" y="{base + 14}" font-size="10">'
                             f"{day_label(d)[5:]}</text>")
        parts.append(f'<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}" '
                     'stroke="#444"/>')
        parts.append(f'<text x="{pad - 4}" y="{top + 4}" font-size="10" text-anchor="end">'
                     f"{peak:,}</text>")
        for j, c in enumerate(classes):
            lx = pad + j * 110
            parts.append(f'<rect x="{lx}" y="{base + 20}" width="10" height="10" '
                         f'fill="{COLOURS[c]}"/><text x="{lx + 14}" y="{base + 29}" '
                         f'font-size="11">{c}</text>')
        y0 += row_h + 20
    height = max(y0, 60)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" font-family="sans-serif">\n'
            '<defs><pattern id="fail" width="6" height="6" patternUnits="userSpaceOnUse" '
            'patternTransform="rotate(45)"><rect width="6" height="6" fill="#fed7d7"/>'
            '<line x1="0" y1="0" x2="0" y2="6" stroke="#c53030" stroke-width="3"/>'
            "</pattern></defs>\n"
            f'<rect width="{width}" height="{height}" fill="white"/>\n'
            + "\n".join(parts) + "\n</svg>\n")
