"""`mailctl sandbox` with a mistyped folder or port list: a clean error, nothing created."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli, snapshot, write_config


@pytest.mark.parametrize("command", ["status", "down", "up"])
def test_missing_dms_dir_is_refused_and_never_created(tmp_path: Path, command: str) -> None:
    at_root = Path("/") / f"nonexistent-mailctl-{uuid.uuid4().hex[:8]}"
    nested = tmp_path / "typo" / "dms"
    state = tmp_path / "state"
    try:
        for target in (at_root, nested):
            r = run_cli("sandbox", command, "--dms-dir", target, "--state-dir", state,
                        cwd=tmp_path)
            assert r.code == 64, r.all
            assert r.err == (f"error: --dms-dir {target} does not exist (expected the "
                             "docker-mailserver config folder a sandbox serves)\n")
            assert r.out == "" and "None" not in r.all
        assert not at_root.exists()
        assert list(tmp_path.iterdir()) == []  # neither typo/dms nor the state dir
    finally:
        if at_root.exists():  # only if the bug is back
            at_root.rmdir()


def test_status_and_down_of_a_config_whose_folder_is_missing(tmp_path: Path) -> None:
    write_config(tmp_path, "providers:\n  sb: {type: dms, path: ./not-yet}\n")
    before = snapshot(tmp_path)
    state = tmp_path / "state"
    r = run_cli("sandbox", "status", "--state-dir", state, cwd=tmp_path)
    assert r.code == 1
    assert r.err == (f"no sandbox serves {tmp_path}/not-yet (none was started in {state}); "
                     "`mailctl sandbox up` starts one\n")
    assert "None" not in r.all
    r = run_cli("sandbox", "status", "--json", "--state-dir", state, cwd=tmp_path)
    data = json.loads(r.out)
    assert r.code == 1 and data["running"] is False and data["started"] is False
    assert data["dms_dir"] == f"{tmp_path}/not-yet"
    r = run_cli("sandbox", "down", "--state-dir", state, cwd=tmp_path)
    assert r.code == 0
    assert r.out == f"no sandbox was running for {tmp_path}/not-yet\n"
    assert snapshot(tmp_path) == before and not (tmp_path / "not-yet").exists()
    assert not state.exists()


@pytest.mark.parametrize("ports", ["1,2,3", "10025,10587,10143,10993,99999", "a,b,c,d,e", "0"])
def test_bad_ports_are_a_usage_error(tmp_path: Path, ports: str) -> None:
    (tmp_path / "dms").mkdir()
    write_config(tmp_path, "providers:\n  sb: {type: dms, path: ./dms}\n")
    before = snapshot(tmp_path)
    r = run_cli("sandbox", "up", "--ports", ports, "--state-dir", tmp_path / "st",
                cwd=tmp_path)
    assert r.code == 64
    assert r.err == (f"error: --ports {ports!r} (expected five port numbers 1-65535: "
                     "SMTP,SUBMISSION,IMAP,IMAPS,LMTP)\n")
    assert snapshot(tmp_path) == before and not (tmp_path / "st").exists()


def test_up_creates_the_configs_folder_only_under_an_existing_parent(tmp_path: Path) -> None:
    write_config(tmp_path, "providers:\n  sb: {type: dms, path: ./a/b/dms}\n")
    r = run_cli("sandbox", "up", "--state-dir", tmp_path / "st", cwd=tmp_path)
    assert r.code == 1
    assert r.err.startswith(f"error: cannot create the dms folder {tmp_path}/a/b/dms: "
                            f"{tmp_path}/a/b does not exist")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mailctl.yaml"]
