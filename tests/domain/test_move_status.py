"""`move status` from a project's state alone: what is next, ETA, private files."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

from mailctl.cli.move import PHASE_NAMES
from mailctl.domain.moveproject import PHASES, Project, status


def test_the_cli_names_the_phases_the_library_runs() -> None:
    assert PHASE_NAMES == PHASES


def test_eta_from_the_mailboxes_done_and_the_time_they_took(tmp_path: Path) -> None:
    root = tmp_path / "move-x"
    boxes = [f"u{i}@x.test" for i in range(10)]
    p = Project.create(root, {"domain": "x.test", "source": "a", "target": "b",
                              "config": "/nowhere", "addresses": boxes, "ttl": 300,
                              "keep_days": 7, "losses": []})
    p.mark("inventory")
    p.mark("provision")
    started = p.data["done"]["provision"]["at"]
    for i, a in enumerate(boxes[:4]):  # four done, 10 s each
        p.record(a, "presync", {"ok": True, "copied": 5})
        p.data["mailboxes"][a]["presync"]["at"] = started + 10 * (i + 1)
    p.record(boxes[4], "presync", {"ok": False, "copied": 0, "error": "server gone"})
    p.data["mailboxes"][boxes[4]]["presync"]["at"] = started + 50
    st = status(p)
    assert st["phase"] == "provision" and st["next"] == "presync"
    assert st["eta_seconds"] == 50.0  # 5 of 10 in 50 s
    row = next(b for b in st["mailboxes"] if b["address"] == boxes[4])
    assert row["error"] == "server gone"
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "move.json").stat().st_mode) == 0o600
    again = Project.load(root)
    assert json.loads((root / "move.json").read_text())["domain"] == "x.test"
    assert again.next_phase == "presync"
    assert time.time() >= started
