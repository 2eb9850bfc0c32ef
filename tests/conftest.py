"""Project-wide pytest plugins, and no skipped test in CI.

CI (`make test` on a fresh machine, with CI set) installs every dependency and
runs as root, so a test that skips there hides a missing dependency or a broken
set-up: it is reported as a failure with the skip's reason.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

from tests.fixtures.ci import in_ci

pytest_plugins = [
    "tests.fixtures.mailstack",
    "tests.fixtures.dnsserver",
    "tests.fixtures.postgres",
    "tests.fixtures.oidc",
    "tests.fixtures.browser",
    "tests.fixtures.promtool",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every dependency must be installed: {reason}"
