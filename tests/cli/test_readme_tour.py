"""The README's tour, command by command, in order, on a copy of examples/ and a real
sandbox: what it promises (probe run works, drift exits 2, the safety limit refuses
on the example) must be true.

The runnable blocks are the `console` blocks of "A five-minute tour" made only of
`$ ` lines; a `(exit N)` in a line's comment is its expected exit code (else 0).
Only the sandbox's ports differ from the README: free ones, so parallel runs and a
sandbox someone left running do not collide.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures.cli import run_cli
from tests.fixtures.mailstack import free_ports

ROOT = Path(__file__).resolve().parents[2]


def tour_commands() -> list[tuple[str, int]]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## A five-minute tour"):]
    section = section[:section.index("\n## ", 1)]
    out = []
    for block in re.findall(r"```console\n(.*?)```", section, re.S):
        lines = block.strip().splitlines()
        if not all(ln.startswith("$ ") for ln in lines):
            continue  # an example of output, not a command to run
        for ln in lines:
            m = re.search(r"\(exit (\d+)\)", ln)
            out.append((ln[2:], int(m.group(1)) if m else 0))
    return out


def test_the_tour_is_what_the_readme_shows() -> None:
    cmds = [c for c, _ in tour_commands()]
    assert any(c.startswith("mailctl probe run") for c in cmds)
    assert any("--reconcile" in c and code == 4 for c, code in tour_commands())
    assert cmds[-1] == "mailctl sandbox down"


@pytest.mark.mailstack
def test_readme_tour_runs_on_the_example(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the tour's probe sends through the sandbox's Postfix, which needs root")
    shutil.copytree(ROOT / "examples", tmp_path / "examples",
                    ignore=shutil.ignore_patterns(".mailctl", "dms", "drift.yaml"))
    ports = free_ports(5)  # SMTP, submission, IMAP, IMAPS, LMTP
    example = tmp_path / "examples" / "mailctl.yaml"
    text = example.read_text()
    assert "port: 10025" in text and "port: 10143" in text
    example.write_text(text.replace("port: 10025", f"port: {ports[0]}")
                       .replace("port: 10143", f"port: {ports[2]}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
    env.update(PATH=f"{Path(sys.executable).parent}:{env['PATH']}", NO_COLOR="1",
               MAILCTL_SANDBOX_PORTS=",".join(map(str, ports)),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    script = ["cd " + str(tmp_path)]
    for i, (cmd, _) in enumerate(tour_commands()):
        script.append(f"{{ {cmd}\n}} > .out.{i} 2> .err.{i}; echo $? > .rc.{i}")
    try:
        proc = subprocess.Popen(["bash", "-c", "\n".join(script)], env=env,
                                start_new_session=True)
        try:
            assert proc.wait(timeout=600) == 0
        finally:
            if proc.poll() is None:  # a step hangs: stop it and everything it started
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        results = []
        for i, (cmd, expected) in enumerate(tour_commands()):
            out, err = ((tmp_path / f".{s}.{i}").read_text() for s in ("out", "err"))
            code = int((tmp_path / f".rc.{i}").read_text())
            results.append((cmd, code, out, err))
            assert code == expected, f"$ {cmd}\nexit {code}, expected {expected}\n{out}{err}"
            assert "Traceback" not in out + err, cmd
        by_cmd = {c.split("#")[0].strip(): (out, err) for c, _, out, err in results}
        out, _ = by_cmd["mailctl probe run"]
        assert out.startswith("sandbox: ok  roundtrip"), out
        out, _ = by_cmd["mailctl apply"]
        assert out == "No changes. The provider matches the config.\n"
        out, _ = by_cmd["mailctl plan -f examples/drift.yaml --detailed-exitcode"]
        assert "~ mailbox  dave@family.test  quota: 1G -> 2G" in out
        _, err = by_cmd["mailctl apply -f examples/drift.yaml --reconcile"]
        assert "refused: family.test: 1 of 3 existing objects would be updated" in err
        assert "  ~ mailbox  dave@family.test" in err
        assert (tmp_path / "examples" / ".mailctl" / "secrets.tsv").stat().st_mode & 0o777 \
            == 0o600
        adopted = (tmp_path / "examples" / ".mailctl" / "adopted.yaml").read_text()
        assert f"path: {tmp_path}/examples/dms" in adopted  # absolute on stdout
    finally:
        run_cli("sandbox", "down", "--purge", "-f", example, cwd=tmp_path)
