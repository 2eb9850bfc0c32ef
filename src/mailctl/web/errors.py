"""Every way a console request can fail, each with its HTTP status and page title.

    ConsoleError                500  something went wrong
    ├── NotSignedIn             401  sign in first
    │   └── SessionExpired      401  idle or too old: sign in again
    ├── Forbidden               403  signed in, but not for this
    │   └── CsrfRejected        403  a form without (or with a stale) security token
    ├── SignInFailed            400  the identity provider's answer was refused
    ├── BadInput                400  a form field that cannot be used
    ├── NotFound                404
    ├── Unsupported             409  the provider cannot do this (capability)
    ├── TooManyRequests         429  rate limit, with Retry-After
    └── Unavailable             503  the identity provider or a mail provider did not answer

The app turns each into a page with `title` and `message`; a message never
holds a password or token, so it can be shown and logged as is.
`from_library` maps the library's errors (providers, accounts, credentials).
"""

from __future__ import annotations


class ConsoleError(Exception):
    status = 500
    title = "Something went wrong"
    retry_after: float | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotSignedIn(ConsoleError):
    status = 401
    title = "Please sign in"


class SessionExpired(NotSignedIn):
    title = "Your session has expired"


class Forbidden(ConsoleError):
    status = 403
    title = "Not allowed"


class CsrfRejected(Forbidden):
    title = "This form could not be accepted"


class SignInFailed(ConsoleError):
    status = 400
    title = "Sign-in failed"


class BadInput(ConsoleError):
    status = 400
    title = "Please check the form"


class NotFound(ConsoleError):
    status = 404
    title = "Not found"


class Unsupported(ConsoleError):
    status = 409
    title = "Not possible here"


class TooManyRequests(ConsoleError):
    status = 429
    title = "Too many attempts"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(ConsoleError):
    status = 503
    title = "A service did not answer"


def from_library(exc: Exception) -> ConsoleError:
    """The console error for a library failure (ProviderError, AccountsError, ...)."""
    from mailctl.accounts.errors import AccountsError
    from mailctl.credentials import CredentialsError, NotCapable
    from mailctl.providers.base import ErrorKind, ProviderError
    from mailctl.secret import scrub
    from mailctl.web.yamledit import EditError

    if isinstance(exc, ConsoleError):
        return exc
    if isinstance(exc, EditError):
        return BadInput(str(exc))
    if isinstance(exc, NotCapable):
        return Unsupported(str(exc))
    if isinstance(exc, CredentialsError):
        return BadInput(str(exc))
    if isinstance(exc, ProviderError):
        text = scrub(str(exc))
        if exc.kind is ErrorKind.NOT_FOUND:
            return NotFound(text)
        if exc.kind in (ErrorKind.INVALID, ErrorKind.CONFLICT):
            return BadInput(text)
        return Unavailable(text)
    if isinstance(exc, AccountsError):
        cls = {400: BadInput, 404: NotFound, 409: BadInput}.get(exc.status, Unavailable)
        return cls(exc.reason)
    return ConsoleError("internal error; the console's log has the details")
