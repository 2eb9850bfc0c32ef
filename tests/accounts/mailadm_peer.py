"""mailadm 1.0.0 from PyPI in its own virtualenv: the peer of the import test and the bench.

One place says where it lives and how it is made, so `make mailadm-venv`, the
test (tests/accounts/test_import.py) and bench/accounts_bench.py agree:

    python -m tests.accounts.mailadm_peer      # make it (what `make mailadm-venv` runs)

The venv lives in the repository's ignored `.state/` folder ($MAILADM_VENV
overrides). It counts as made only once its `.complete` marker exists, written
after pip succeeded: a build that was interrupted is thrown away and redone.
Two builds at once (parallel make, bench and test) take turns on a lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("MAILADM_VENV") or ROOT / ".state" / "mailadm-venv")
PYTHON = VENV / "bin" / "python"
MARKER = VENV / ".complete"
# setuptools < 82: mailadm imports pkg_resources; gunicorn: how mailadm documents serving.
REQUIREMENTS = ("mailadm==1.0.0", "setuptools<82", "gunicorn")
HINT = "make mailadm-venv (or: python -m tests.accounts.mailadm_peer)"


def ready() -> bool:
    return MARKER.is_file() and PYTHON.exists()


def ensure(quiet: bool = False) -> bool:
    """Make the venv unless it is complete already; True when it is usable."""
    if ready():
        return True
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / f".{VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready():  # made by whoever held the lock before us
            return True
        shutil.rmtree(VENV, ignore_errors=True)  # a build that was cut short
        if not quiet:
            print(f"creating {VENV} with {' '.join(REQUIREMENTS)} from PyPI ...", flush=True)
        ok = subprocess.run([sys.executable, "-m", "venv", str(VENV)]).returncode == 0
        ok = ok and subprocess.run([str(PYTHON), "-m", "pip", "install", "-q",
                                    "--disable-pip-version-check", *REQUIREMENTS]).returncode == 0
        ok = ok and subprocess.run([str(PYTHON), "-c", "import mailadm.db"]).returncode == 0
        if ok:
            MARKER.write_text(" ".join(REQUIREMENTS) + "\n")
        return ok


if __name__ == "__main__":
    sys.exit(0 if ensure() else 1)
