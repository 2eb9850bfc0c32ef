"""The shared HTTP stack of the hosted providers (Migadu, mailcow, Mailu, Stalwart)."""

from mailctl.model import MailObject
from mailctl.providers.http.client import (
    AmbiguousError,
    HttpClient,
    HttpSettings,
    RateLimit,
    TransportFailure,
    decode,
    provider_message,
)
from mailctl.providers.http.limiter import RateLimiter, state_path
from mailctl.providers.http.provider import HttpProvider, field_diff

__all__ = [
    "AmbiguousError",
    "HttpClient",
    "HttpProvider",
    "HttpSettings",
    "MailObject",
    "RateLimit",
    "RateLimiter",
    "TransportFailure",
    "decode",
    "field_diff",
    "provider_message",
    "state_path",
]
