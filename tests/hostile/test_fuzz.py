"""Property-based fuzzing of everything that parses a user's or a client's input.

The property is the same everywhere: any input ends in a result or in the
documented error type, within a time bound and without unbounded memory — never
another exception, a hang or a traceback. Hypothesis shrinks a failure to the
smallest input that shows it.
"""

from __future__ import annotations

import os
import resource
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from mailctl.config.errors import ConfigError
from mailctl.config.load import load_config
from mailctl.config.refs import RefError, Resolver
from mailctl.model import AddressError, normalise_address, normalise_domain
from mailctl.sync.endpoint import parse_endpoint
from mailctl.sync.model import SyncError
from mailctl.util.sizes import parse_size

FUZZ = settings(max_examples=int(os.environ.get("MAILCTL_FUZZ_EXAMPLES", "150")),
                deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow])
TIME_BOUND = 5.0  # seconds for one input
MEMORY_BOUND = 64 << 20  # bytes traced while handling one input


def bounded(fn: Callable[[], Any]) -> Any:
    """Run fn with a time and a memory bound; what it raises is re-raised."""
    tracemalloc.start()
    t0 = time.monotonic()
    try:
        return fn()
    finally:
        elapsed = time.monotonic() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < TIME_BOUND, f"took {elapsed:.1f} s"
        assert peak < MEMORY_BOUND, f"peak {peak >> 20} MiB"


# -- the config loader --------------------------------------------------------------------
KEYS = ["providers", "domains", "type", "path", "provider", "mailboxes", "aliases",
        "local_part", "destinations", "quota", "forwards", "catch_all", "safety", "dns",
        "accounts", "probe", "password", "password_policy", "unmanaged", "enabled", "tags",
        "max_delete_share", "relays", "<<", "api_key", "user", "url", "domain_aliases"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True), st.text(max_size=40),
    st.sampled_from(["dms", "./dms", "alice", "5G", "99999999999999999999999T", "-1G", "yes",
                     "no", "${env:NOPE}", "${file:/dev/zero}", "${file:missing}", "${env:}",
                     "example.org", "ALICE@Example.ORG", "xn--", "a" * 300, "\x00", "~",
                     "0", "1e309", "*", "@", "tmp.*", "\u202e"]))
KEY = st.one_of(st.sampled_from(KEYS), st.text(max_size=12))
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=5), st.dictionaries(KEY, inner, max_size=6)), max_leaves=40)
CONFIGISH = st.fixed_dictionaries(
    {"providers": st.one_of(
        st.just({"local": {"type": "dms", "path": "./dms"}}),
        st.dictionaries(KEY, st.dictionaries(KEY, SCALARS, max_size=4), max_size=3))},
    optional={"domains": st.dictionaries(
        st.one_of(st.sampled_from(["example.org", "EXAMPLE.org", "bücher.test", "a..b"]),
                  st.text(max_size=20)),
        st.dictionaries(KEY, DOCS, max_size=6), max_size=3),
        "safety": st.dictionaries(KEY, SCALARS, max_size=3)})

YAML_SNIPPETS = st.sampled_from([
    "a: &a [*a]\n", "x: &x {y: *x}\n", "<<: {a: 1}\n", "? [a, b]\n: c\n", "!!binary aGk=\n",
    "%YAML 1.1\n---\n", "--- \n...\n---\n", "key: !!set {a, b}\n", "k: !!timestamp 2001\n",
    "a: 'unterminated\n", "\t- tab\n", "\ufeffproviders: {}\n", "providers: {a: 1, a: 2}\n",
    "&anchor_only\n", "*undefined_alias\n", "providers: " + "[" * 200 + "]" * 200 + "\n",
])


@pytest.fixture
def config_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "dms").mkdir()
    old = os.environ.get("MAILCTL_NO_CACHE")
    os.environ["MAILCTL_NO_CACHE"] = "1"
    yield tmp_path
    if old is None:
        os.environ.pop("MAILCTL_NO_CACHE", None)


def _load(path: Path) -> None:
    try:
        bounded(lambda: load_config(path).close())
    except ConfigError as exc:
        for issue in exc.issues:
            text = issue.format()
            assert text and "Traceback" not in text


@FUZZ
@given(doc=CONFIGISH)
def test_config_structured(config_dir: Path, doc: dict[str, Any]) -> None:
    path = config_dir / "mailctl.yaml"
    try:
        text = yaml.safe_dump(doc, allow_unicode=True)
    except (yaml.YAMLError, ValueError):
        assume(False)
    path.write_text(text)
    _load(path)


@FUZZ
@given(head=st.one_of(st.text(max_size=300), YAML_SNIPPETS),
       tail=st.one_of(st.text(max_size=80), YAML_SNIPPETS))
def test_config_text(config_dir: Path, head: str, tail: str) -> None:
    path = config_dir / "mailctl.yaml"
    path.write_text(head + tail, encoding="utf-8", errors="surrogatepass") if _encodable(
        head + tail) else path.write_bytes((head + tail).encode("utf-8", "replace"))
    _load(path)


@FUZZ
@given(data=st.binary(max_size=400))
def test_config_bytes(config_dir: Path, data: bytes) -> None:
    path = config_dir / "mailctl.yaml"
    path.write_bytes(data)
    _load(path)


def _encodable(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_config_alias_explosion_is_bounded(config_dir: Path) -> None:
    """Small enough to survive without a bound (10^5 nodes); the corpus runs the
    nine- and twelve-level bombs in a subprocess under a memory limit."""
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    prev = "a"
    for i in range(4):
        name = f"l{i}"
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
        prev = name
    path = config_dir / "mailctl.yaml"
    path.write_text("\n".join(lines) + f"\nproviders: *{prev}\n")
    with pytest.raises(ConfigError):
        bounded(lambda: load_config(path))


# -- secret references ----------------------------------------------------------------------
@FUZZ
@given(value=st.one_of(
    st.text(max_size=60),
    st.builds(lambda k, a: f"${{{k}:{a}}}", st.sampled_from(["env", "file", "vault", ""]),
              st.text(max_size=30))))
def test_secret_reference(tmp_path: Path, value: str) -> None:
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00")
    (tmp_path / ".env").write_bytes(b"A=1\nB\xff=\x00\n")
    try:
        secret = bounded(lambda: Resolver(tmp_path).resolve(value))
    except RefError as exc:
        assert str(exc)
    else:
        assert secret.reveal() not in repr(secret)


# -- URLs of the sync commands -------------------------------------------------------------
@FUZZ
@given(text=st.one_of(
    st.text(max_size=60),
    st.builds(lambda s, u, h, p: f"{s}{u}@{h}:{p}",
              st.sampled_from(["imap://", "imaps://", "maildir:", "ftp://", "IMAP://", ""]),
              st.text(max_size=10), st.text(max_size=10),
              st.one_of(st.integers(-10, 10**7).map(str), st.text(max_size=6)))))
def test_endpoint_url(text: str) -> None:
    try:
        ep = bounded(lambda: parse_endpoint(text))
    except SyncError as exc:
        assert str(exc)
        return
    if ep.kind == "imap":
        assert 1 <= ep.port <= 65535, f"{text!r} gave port {ep.port}"
        assert ep.host, f"{text!r} gave an empty host"


# -- addresses, domains and sizes ------------------------------------------------------------
@FUZZ
@given(text=st.text(max_size=300))
def test_address_and_domain(text: str) -> None:
    fns: list[Callable[[str], str]] = [normalise_address, normalise_domain]
    for fn in fns:
        try:
            bounded(partial(fn, text))
        except AddressError as exc:
            assert str(exc)


@FUZZ
@given(value=st.one_of(st.text(max_size=40), st.integers(), st.floats(), st.booleans(),
                       st.none()))
def test_size(value: Any) -> None:
    try:
        size = parse_size(value)
    except ValueError as exc:
        assert str(exc)
    else:  # how large a quota may be is each provider's limit, checked at validate
        assert size >= 0


# -- the accounts web API ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def api_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from mailctl.accounts.context import open_service
    from mailctl.accounts.web import create_app

    d = tmp_path_factory.mktemp("api")
    (d / "dms").mkdir()
    (d / "mailctl.yaml").write_text(
        f"providers:\n  sb:\n    type: dms\n    path: {d / 'dms'}\n    lock_timeout: 2\n"
        "domains:\n  example.org:\n    provider: sb\n"
        "accounts:\n  rate_limit: {per_minute: 0}\n")
    svc = open_service(load_config(d / "mailctl.yaml"))
    svc.store.add_token("t1", "fuzz-secret-value-0123456789", "example.org", "tmp.", "1d", 1000)
    with TestClient(create_app(svc), raise_server_exceptions=False) as client:
        yield client
    svc.store.close()


PATHS = st.one_of(st.sampled_from(["/", "/new_email", "/new_email/", "//", "/health", "/x",
                                   "/%00", "/..%2f..", "/new_email?t=", "/?t=" + "A" * 5000]),
                  st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126),
                          max_size=40).map(lambda s: "/" + s))
_lock = threading.Lock()


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
       path=PATHS,
       query=st.dictionaries(st.sampled_from(["t", "n", "x", "t[]", ""]),
                             st.text(max_size=40), max_size=3),
       body=st.binary(max_size=200),
       headers=st.dictionaries(
           st.sampled_from(["Content-Type", "X-Forwarded-For", "Host", "Accept",
                            "Content-Length-X", "Origin"]),
           st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
           max_size=3))
def test_web_api(api_client: Any, method: str, path: str, query: dict[str, str], body: bytes,
                 headers: dict[str, str]) -> None:
    with _lock:
        resp = bounded(lambda: api_client.request(method, path, params=query, content=body,
                                                  headers=headers, follow_redirects=False))
    assert resp.status_code < 500 or resp.status_code in (503, 504), resp.text
    assert not (300 <= resp.status_code < 400), f"redirect to {resp.headers.get('location')}"
    if method != "HEAD":
        assert resp.headers["content-type"].startswith("application/json"), resp.text
        data = resp.json()
        if resp.status_code >= 400:
            assert data["type"] == "error" and data["reason"]
    assert "fuzz-secret-value" not in resp.text or resp.status_code == 200


def test_memory_limit_is_settable() -> None:
    """The subprocess corpus relies on RLIMIT_AS; make sure the platform honours it."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    assert hard == resource.RLIM_INFINITY or hard >= 1 << 30
