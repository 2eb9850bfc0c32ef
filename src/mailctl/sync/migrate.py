"""`mailctl migrate --accounts FILE --jobs N`: many account pairs, in parallel.

Each pair runs as its own `python -m mailctl.sync sync` process: one account's
crash, hang or server error cannot take the others down, the pairs really run
in parallel (no GIL), and every pair is as kill -9 safe and resumable as a
single sync (re-running the migration continues where each pair stopped).
Passwords stay out of argv: the file names passwords by file or reference.

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

from mailctl.sync.model import SyncError
from mailctl.sync.runner import FAILED, OK, USAGE, _fail, table

PAIR_KEYS = {"src", "dst", "password1_file", "password1_ref", "password2_file", "password2_ref",
             "folders", "exclude", "map", "state"}


def load_accounts(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    rows: list[dict[str, Any]]
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text) or []
        rows = data.get("accounts", []) if isinstance(data, dict) else data
    else:
        import csv

        rows = []
        for r in csv.DictReader(line for line in text.splitlines()
                                if line.strip() and not line.startswith("#")):
            row: dict[str, Any] = {k.strip(): (v or "").strip() for k, v in r.items() if k}
            for k in ("folders", "exclude", "map"):
                row[k] = [x for x in row.get(k, "").split(";") if x]
            rows.append(row)
    for i, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not row.get("src") or not row.get("dst"):
            raise SyncError(f"{path}: account {i} needs src and dst")
        unknown = set(row) - PAIR_KEYS
        if unknown:
            raise SyncError(f"{path}: account {i}: unknown keys {', '.join(sorted(unknown))}")
    return rows


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
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "mailctl.sync", *_argv(row, base, dry_run, ca_file)],
                       capture_output=True, text=True, cwd=base)
    out: dict[str, Any] = {"src": row["src"], "dst": row["dst"], "exit": p.returncode,
                           "seconds": round(time.monotonic() - t0, 2)}
    try:
        out["report"] = json.loads(p.stdout)
    except json.JSONDecodeError:
        out["error"] = (p.stderr.strip().splitlines() or ["no output"])[-1]
    else:
        errors = [f["error"] for f in out["report"]["folders"] if f.get("error")]
        if errors:
            out["error"] = errors[0]
    return out


def cmd_migrate(accounts: Path, jobs: int, *, dry_run: bool = False,
                ca_file: str | None = None, as_json: bool = False) -> int:
    try:
        rows = load_accounts(accounts)
    except (OSError, SyncError, ValueError) as exc:
        return _fail(str(exc), USAGE if isinstance(exc, SyncError) else FAILED)
    base = accounts.resolve().parent
    with ThreadPoolExecutor(max(1, jobs)) as pool:
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
