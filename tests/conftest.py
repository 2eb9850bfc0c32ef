"""Project-wide pytest plugins."""

pytest_plugins = [
    "tests.fixtures.mailstack",
    "tests.fixtures.dnsserver",
    "tests.fixtures.postgres",
]
