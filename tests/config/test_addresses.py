"""Address normalisation: what is accepted, what it becomes, and what is refused."""

from __future__ import annotations

import pytest

from mailctl.model import AddressError, normalise_address

GOOD = {
    "alice@example.org": "alice@example.org",
    "Alice@Example.ORG": "alice@example.org",
    " bob@x.test ": "bob@x.test",
    "o'brien@a.test": "o'brien@a.test",
    "a.b+c@xn--bcher-kva.test": "a.b+c@xn--bcher-kva.test",
    "anna@Bücher.test": "anna@xn--bcher-kva.test",
    "@catch.test": "@catch.test",
    "x" * 64 + "@a.test": "x" * 64 + "@a.test",
}
BAD = ["a..b@x.test", ".a@x.test", "a.@x.test", "a@-x.test", "a@x-.test", "a@x",
       "x" * 65 + "@a.test", "a b@x.test", "a@" + "l" * 64 + ".test", "jürgen@x.test", "a@"]


@pytest.mark.parametrize(("raw", "want"), GOOD.items())
def test_accepted_and_normalised(raw: str, want: str) -> None:
    assert normalise_address(raw) == want


@pytest.mark.parametrize("raw", BAD)
def test_refused(raw: str) -> None:
    with pytest.raises(AddressError):
        normalise_address(raw)


def test_bare_local_part_takes_the_default_domain() -> None:
    assert normalise_address("Info", "Example.ORG") == "info@example.org"
    with pytest.raises(AddressError):
        normalise_address("info")
