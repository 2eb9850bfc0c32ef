"""`mailctl migrate --accounts FILE --jobs N`: many account pairs, in parallel.

Each pair runs as its own `python -m mailctl.sync sync` process: one account's
crash, hang or server error cannot take the others down, the pairs really run
in parallel (no GIL), and every pair is as kill -9 safe and resumable as a
single sync (re-running the migration continues where each pair stopped).
Passwords stay out of argv: the file names passwords by file or reference.
The whole file is checked (URLs, password files) before the first pair starts,
and a `mailctl migrate` killed with -9 takes its running pairs with it (Linux:
PR_SET_PDEATHSIG, see fastcli), so a re-run never finds a pair's state locked
by an orphan.

Accounts file, CSV with a header or YAML (a list, or {accounts: [...]}):
    src, dst, password1_file | password1_ref, password2_file | password2_ref,
    folders, exclude, map   (the last three: ";"-separated in CSV)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mailctl.sync.endpoint import parse_endpoint
from mailctl.sync.files import load_yaml, read_text
from mailctl.sync.model import UsageError
from mailctl.sync.runner import FAILED, OK, USAGE, _fail, table

PAIR_KEYS = {"src", "dst", "password1_file", "password1_ref", "password2_file", "password2_ref",
             "folders", "exclude", "map", "state"}
JOBS_MAX = 64  # account pairs at once, each its own process with two sessions per side


def load_accounts(path: Path) -> list[dict[str, Any]]:
    """The pairs, each checked as far as possible without a network (URLs, password files
    present): any mistake is a UsageError naming file:line, before one pair is started."""
    base = path.resolve().parent
    lines: dict[int, int]
    rows: list[Any]
    if path.suffix.lower() in (".yaml", ".yml"):
        data, lines = load_yaml(path, "a list of account pairs")
        rows = data.get("accounts", []) if isinstance(data, dict) else data or []
        if not isinstance(rows, list):
            raise UsageError(f"{path}: expected a list of account pairs (or accounts: [...])")
    else:
        rows, lines = _csv_rows(path)
    if not rows:
        raise UsageError(f"{path}: no account pairs (expected one per line after the header)")
    for i, row in enumerate(rows):
        where = f"{path}:{lines.get(i, i + 1)}"
        if not isinstance(row, dict):
            raise UsageError(f"{where}: expected src, dst and password keys")
        unknown = set(row) - PAIR_KEYS
        if unknown:
            raise UsageError(f"{where}: unknown keys {', '.join(sorted(map(str, unknown)))} "
                             f"(expected some of {', '.join(sorted(PAIR_KEYS))})")
        for key in ("src", "dst"):
            if not row.get(key):
                raise UsageError(f"{where}: {key} is empty (expected an imap:// URL or "
                                 "maildir:PATH)")
            try:
                ep = parse_endpoint(str(row[key]))
            except UsageError as exc:
                raise UsageError(f"{where}: {key}: {exc}") from None
            n = "1" if key == "src" else "2"
            pf, ref = row.get(f"password{n}_file"), row.get(f"password{n}_ref")
            if ep.kind == "imap" and not (pf or ref):
                raise UsageError(f"{where}: {key} needs a password (expected password{n}_file "
                                 f"or password{n}_ref)")
            if pf:
                p = Path(str(pf)).expanduser()
                try:
                    read_text(p if p.is_absolute() else base / p, f"password{n}_file")
                except UsageError as exc:
                    raise UsageError(f"{where}: {exc}") from None
    return rows


def _csv_rows(path: Path) -> tuple[list[dict[str, Any]], dict[int, int]]:
    """CSV with a header; `#` lines and blank lines skipped; row index -> its line."""
    import csv
    import io

    text = read_text(path, "the accounts file")
    # comment lines blanked, not removed, so the reader's line numbers stay the file's
    text = "\n".join("" if line.lstrip().startswith("#") else line
                     for line in text.splitlines())
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    rows: list[dict[str, Any]] = []
    lines: dict[int, int] = {}
    try:
        for rec in reader:
            if not any(c.strip() for c in rec):
                continue
            if header is None:
                header = [h.strip() for h in rec]
                continue
            if len(rec) > len(header):
                raise UsageError(f"{path}:{reader.line_num}: {len(rec)} fields, the header "
                                 f"has {len(header)} (expected one value per column)")
            row: dict[str, Any] = {k: (v or "").strip()
                                   for k, v in zip(header, rec, strict=False) if k}
            for k in ("folders", "exclude", "map"):
                row[k] = [x for x in row.get(k, "").split(";") if x]
            lines[len(rows)] = reader.line_num
            rows.append({k: v for k, v in row.items() if v != ""})
    except csv.Error as exc:
        raise UsageError(f"{path}:{reader.line_num}: {exc} (expected CSV)") from None
    return rows, lines


def _argv(row: dict[str, Any], base: Path, dry_run: bool, ca_file: str | None) -> list[str]:
    argv = ["sync", str(row["src"]), str(row["dst"]), "--json"]
    for key in ("password1_file", "password2_file", "state"):
        if row.get(key):
            p = Path(str(row[key])).expanduser()
            argv += [f"--{key.replace('_', '-')}", str(p if p.is_absolute() else base / p)]
    for key in ("password1_ref", "password2_ref"):
        if row.get(key):
            argv += [f"--{key.replace('_', '-')}", str(row[key])]
    for key, opt in (("folders", "--folders"), ("exclude", "--exclude"), ("map", "--map")):
        vals = row.get(key) or []
        for v in [vals] if isinstance(vals, str) else vals:
            argv += [opt, str(v)]
    if dry_run:
        argv.append("--dry-run")
    if ca_file:
        argv += ["--ca-file", ca_file]
    return argv


def run_one(row: dict[str, Any], base: Path, dry_run: bool, ca_file: str | None
            ) -> dict[str, Any]:
    import os

    from mailctl.sync.fastcli import PARENT_ENV

    t0 = time.monotonic()
    env = {**os.environ, PARENT_ENV: str(os.getpid())}  # the pair dies with us (fastcli)
    p = subprocess.run([sys.executable, "-m", "mailctl.sync", *_argv(row, base, dry_run, ca_file)],
                       capture_output=True, text=True, cwd=base, env=env)
    out: dict[str, Any] = {"src": row["src"], "dst": row["dst"], "exit": p.returncode,
                           "seconds": round(time.monotonic() - t0, 2)}
    try:
        report = json.loads(p.stdout)
    except json.JSONDecodeError:
        out["error"] = (p.stderr.strip().splitlines() or ["no output"])[-1]
    else:
        if "error" in report:  # the pair failed as a whole (usage, login, lock)
            out["error"] = report["error"]["message"]
        else:
            out["report"] = report
            errors = [f["error"] for f in report["folders"] if f.get("error")]
            if errors:
                out["error"] = errors[0]
    return out


def cmd_migrate(accounts: Path, jobs: int, *, dry_run: bool = False,
                ca_file: str | None = None, as_json: bool = False) -> int:
    try:
        if not 1 <= jobs <= JOBS_MAX:
            raise UsageError(f"--jobs {jobs} is out of range (expected 1-{JOBS_MAX})")
        if ca_file is not None:
            read_text(ca_file, "--ca-file")
        rows = load_accounts(accounts)
    except UsageError as exc:
        return _fail(str(exc), USAGE, as_json)
    base = accounts.resolve().parent
    with ThreadPoolExecutor(jobs) as pool:
        results = list(pool.map(lambda r: run_one(r, base, dry_run, ca_file), rows))
    if as_json:
        print(json.dumps({"ok": all(r["exit"] == 0 for r in results), "accounts": results},
                         indent=2))
    else:
        lines = []
        for r in results:
            t = r.get("report", {}).get("totals", {})
            lines.append([f"{r['src']} -> {r['dst']}", "ok" if r["exit"] == 0 else "FAILED",
                          str(t.get("copied", "-")), str(t.get("adopted", "-")),
                          str(t.get("flags", "-")), f"{r['seconds']:.1f}", r.get("error") or ""])
        table(["account", "result", "copied", "present", "flags", "seconds", "error"], lines)
        bad = sum(r["exit"] != 0 for r in results)
        print(f"{len(results) - bad} of {len(results)} accounts migrated" +
              (f"; re-run to resume the {bad} failed" if bad else ""))
    return OK if all(r["exit"] == 0 for r in results) else FAILED
