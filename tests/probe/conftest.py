"""Fixtures of the probe tests (the mail stack comes from tests/fixtures/mailstack.py)."""

from tests.probe.stub_http import http_stub

__all__ = ["http_stub"]
