"""DNS hosts: octoDNS provider classes built from the `dns.hosts` block, and their failures.

mailctl adds no client of its own for any DNS host: a host is an octoDNS
provider class plus its keyword arguments, exactly as octoDNS's own config
names it. What mailctl adds is that credentials come through its secret
references, resolved only here (so `dns check` never needs them), and that
every failure becomes one line naming the domain, the host and the reference.
"""

from __future__ import annotations

import importlib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailctl.config.refs import Resolver
    from mailctl.dns.settings import DnsHost

# Keyword arguments that hold credentials: they must be secret references.
_SECRET_KEY = re.compile(r"(secret|token|password|passwd|(^|_)key$|api_key|credentials)", re.I)
_NOT_SECRET = {"key_name", "key_algorithm", "access_key_id", "key_id"}


class PublishError(Exception):
    """A DNS publish could not go ahead; `exit_code` follows the CLI's table."""

    exit_code = 3


class HostConfigError(PublishError):
    """The `dns:` block is wrong (unknown host, class not installed, bad argument)."""

    exit_code = 1


class HostError(PublishError):
    """The DNS host could not be read or written (unreachable, credentials, zone missing)."""

    exit_code = 3


class Refused(PublishError):
    """A safety limit, an unconfirmed delete, or a plan that is not the one reviewed."""

    exit_code = 4


def secret_fields(kwargs: dict[str, Any]) -> list[str]:
    return [k for k in kwargs if _SECRET_KEY.search(k) and k not in _NOT_SECRET]


def references(host: DnsHost) -> str:
    """`key_secret: ${env:TSIG}` for every credential of `host`: safe to print."""
    kwargs = host.kwargs()
    return ", ".join(f"{k}: {kwargs[k]}" for k in secret_fields(kwargs)) or "no credentials"


def check_host(name: str, host: DnsHost) -> list[tuple[str, str]]:
    """Problems with `host`'s settings as (field, message), before anything is resolved."""
    from mailctl.config.refs import is_reference

    problems = []
    for key in secret_fields(host.kwargs()):
        value = host.kwargs()[key]
        if not isinstance(value, str) or not is_reference(value):
            problems.append((key, "a credential must be a secret reference (${env:NAME} or "
                                  "${file:path}), not a literal value"))
    return problems


def _resolve(value: Any, resolver: Resolver) -> Any:
    from mailctl.config.refs import is_reference

    if isinstance(value, str) and is_reference(value):
        return resolver.resolve(value).reveal()
    if isinstance(value, dict):
        return {k: _resolve(v, resolver) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, resolver) for v in value]
    return value


def provider_class(name: str, host: DnsHost) -> type[Any]:
    module_name, _, class_name = host.provider_class.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.split(".")[0].replace("_", "-")
        raise HostConfigError(f"DNS host {name!r}: cannot import {module_name} ({exc}); "
                              f"install it (pip install {package})") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise HostConfigError(f"DNS host {name!r}: {module_name} has no class {class_name}")
    return cls


def open_host(name: str, host: DnsHost, resolver: Resolver) -> Any:
    """The octoDNS provider for `host`, references resolved; no network is touched here
    except what the class's own constructor does (RFC 2136 resolves a host *name*)."""
    from mailctl.config.refs import RefError
    from mailctl.secret import scrub

    for field, message in check_host(name, host):
        raise HostConfigError(f"DNS host {name!r}: {field}: {message}")
    cls = provider_class(name, host)
    try:
        kwargs = _resolve(host.kwargs(), resolver)
    except RefError as exc:
        raise HostConfigError(f"DNS host {name!r}: {exc}") from None
    limits = {"update_pcent_threshold": host.max_update_share,
              "delete_pcent_threshold": host.max_delete_share}
    try:
        try:  # mailctl never manages the root NS, so octoDNS's warning about it is noise
            return cls(name, root_ns_warnings=False, **limits, **kwargs)
        except TypeError:
            return cls(name, **limits, **kwargs)
    except TypeError as exc:
        raise HostConfigError(f"DNS host {name!r} ({host.provider_class}): "
                              f"{scrub(str(exc))}") from None
    except Exception as exc:  # a provider's own validation (missing account, bad host name)
        raise HostError(f"DNS host {name!r} ({host.provider_class}): "
                        f"{scrub(str(exc)) or type(exc).__name__}") from None


def describe_failure(exc: BaseException) -> str:
    """What went wrong talking to a DNS host, in words a user can act on."""
    import dns.exception
    import dns.tsig

    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 5:
        chain.append(current)
        current = current.__cause__ or current.__context__
    text = " ".join(str(e) for e in chain)
    for e in chain:
        if isinstance(e, dns.tsig.PeerBadKey) or "didn't know the key" in text:
            return "the server does not know this TSIG key name or algorithm"
        if isinstance(e, dns.tsig.PeerBadSignature) or "didn't like the signature" in text:
            return "the server rejected the TSIG signature: wrong key secret"
        if isinstance(e, dns.tsig.PeerError):
            return f"TSIG error: {e}"
    if "NOTAUTH" in text or "requires a TSIG" in text:
        return ("the server refused (NOTAUTH): the zone is not served there, or this key "
                "may not transfer/update it")
    if "REFUSED" in text:
        return "the server refused the request (REFUSED): the zone is not served there"
    for e in chain:
        if isinstance(e, ConnectionRefusedError):
            return "connection refused: no DNS server listens there"
        if isinstance(e, dns.exception.Timeout | TimeoutError) or "timed out" in str(e):
            return "the server did not answer in time"
        if isinstance(e, OSError):
            return f"network error: {e.strerror or e}"
    return str(exc) or type(exc).__name__
