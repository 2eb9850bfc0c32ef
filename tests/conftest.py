"""Project-wide pytest plugins."""

pytest_plugins = [
    "tests.fixtures.mailstack",
    "tests.fixtures.dnsserver",
    "tests.fixtures.postgres",
    "tests.fixtures.oidc",
    "tests.fixtures.browser",
    "tests.fixtures.promtool",
]
