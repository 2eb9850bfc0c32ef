"""What went wrong with an account, in four kinds a person can act on, with the
server's own words kept beside.

The kind decides whether the queue tries again: a server that is down or drops
the connection is retried with a growing wait; a refused sign-in is not (a
loop of wrong passwords gets accounts locked by fail2ban and providers alike),
nor a full mailbox or a rejected message (the same message would be refused
again). `jobs status` shows the advice; `jobs retry` re-queues after a fix.
"""

from __future__ import annotations

AUTH, QUOTA, DOWN, REJECTED, OTHER = "auth", "quota", "server down", "message rejected", "other"

_WORDS: list[tuple[str, tuple[str, ...]]] = [
    (AUTH, ("AUTHENTICATIONFAILED", "authentication failed", "AUTHORIZATIONFAILED",
            "Invalid credentials", "LOGIN failed", "login failed", "sign-in", "password",
            "[AUTH", "not authorized", "no such user")),
    (QUOTA, ("OVERQUOTA", "Quota exceeded", "quota exceeded", "over quota", "Over quota",
             "[LIMIT]", "mailbox is full", "Mailbox is full")),
    (DOWN, ("Connection refused", "connection refused", "timed out", "closed by the server",
            "connection lost", "Connection reset", "Broken pipe", "EOF occurred",
            "UNAVAILABLE", "[SERVERBUG]", "Name or service not known",
            "Temporary failure in name resolution", "No route to host", "Network is unreachable",
            "Too many connections", "Maximum number of connections")),
    (REJECTED, ("APPEND", "rejected", "too large", "TOOBIG", "Message too big",
                "[CANNOT]", "Invalid message")),
]

ADVICE = {
    AUTH: "fix the account's credentials (password file/ref, master user), then "
          "`mailctl jobs retry --failure auth`; not retried on its own",
    QUOTA: "make room or raise the target mailbox's quota, then `mailctl jobs retry ACCOUNT`",
    DOWN: "retried on its own with a growing wait; if it persists, check that the server "
          "is up and reachable from the workers, then `mailctl jobs retry ACCOUNT`",
    REJECTED: "the target refused a message (size or content): see the server's words; "
              "exclude the folder or raise the target's limit, then `mailctl jobs retry ACCOUNT`",
    OTHER: "see the server's words and the worker's log; `mailctl jobs retry ACCOUNT` "
           "after a fix",
}


def classify(text: str) -> str:
    for kind, words in _WORDS:
        if any(w in text for w in words):
            return kind
    return OTHER


def retryable(kind: str) -> bool:
    return kind == DOWN


class CopyFailed(Exception):
    """A job that failed for a reason worth retrying (procrastinate's RetryStrategy retries
    this class only)."""

    def __init__(self, kind: str, words: str) -> None:
        super().__init__(f"{kind}: {words}")
        self.kind, self.words = kind, words


class CopyRefused(Exception):
    """A job that failed in a way another try would not change (auth, quota, rejected)."""

    def __init__(self, kind: str, words: str) -> None:
        super().__init__(f"{kind}: {words}")
        self.kind, self.words = kind, words


class Aborted(Exception):
    """`jobs cancel` of a running copy: raised between two batches, after the last one was
    confirmed by the target and committed to the state, so a later run goes on from there."""
