"""Every way a redemption or an admin command can fail, with its HTTP status.

The web API turns these into `{"status_code", "type": "error", "reason"}`
and the CLI into `error: reason`; a reason never contains a token secret or
a password, so both can show it as is.
"""

from __future__ import annotations


class AccountsError(Exception):
    status = 500
    retry_after: float | None = None

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotFound(AccountsError):
    status = 404


class AlreadyExists(AccountsError):
    status = 409


class InvalidInput(AccountsError):
    status = 400


class UnknownToken(AccountsError):
    status = 403


class TokenUnusable(AccountsError):
    """Exhausted, disabled or past its end date: asking again will not help."""

    status = 410


class AddressTaken(AccountsError):
    status = 409


class RateLimited(AccountsError):
    status = 429

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class StoreBusy(AccountsError):
    status = 503
    retry_after = 5.0


class StoreUnavailable(AccountsError):
    """The store cannot be opened (an unwritable directory, a database server down)."""

    status = 503
    retry_after = 30.0

    def __init__(self, reason: str, local: bool = False) -> None:
        super().__init__(reason)
        self.local = local  # a file on this machine, not a server that did not answer


class ProviderUnavailable(AccountsError):
    status = 503
    retry_after = 30.0


class ProviderRejected(AccountsError):
    status = 502


class ProviderTimeout(AccountsError):
    status = 504
