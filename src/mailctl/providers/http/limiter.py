"""Client-side rate limiting that cannot trip a "N requests per window" server limit.

A classic token bucket (capacity N, refill N/W) lets 2N requests through in
one window — a full burst, then the refill — which is exactly what Migadu
punishes with a 403 and a temporary IP block. So this limiter is a sliding
window: a request may start only when fewer than N requests have been in
flight or *completed* during the last W seconds. Counting from completion
rather than from sending makes it safe without any clock margin: the server
sees a request arrive somewhere between our send and our receipt of the
answer, so two requests N apart always arrive at least W apart.

The window is kept across runs in a small state file, because `mailctl plan`
followed by `mailctl apply` are two processes and the server counts both.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path

from mailctl.util.atomic import atomic_write
from mailctl.util.private import private_dir


def state_path(kind: str, identity: str) -> Path:
    """Where the window of one account at one endpoint is remembered (never the key)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha256(identity.encode()).hexdigest()[:20]
    return base / "mailctl" / "ratelimit" / f"{kind}-{digest}.json"


class RateLimiter:
    def __init__(
        self, requests: int, per_seconds: float, state_file: Path | None = None
    ) -> None:
        self.requests = requests
        self.window = per_seconds
        self.state_file = state_file
        self._cond = threading.Condition()
        self._save_lock = threading.Lock()  # one writer of the state file at a time
        self._in_flight = 0
        self._done: deque[float] = deque()
        self._paused_until = 0.0
        self.waited = 0.0  # seconds spent waiting for a slot (reported by the benchmark)
        self._load()
        if state_file is not None:
            # The CLI does not close providers; the window must survive the process anyway.
            atexit.register(self.save)

    # -- the window ------------------------------------------------------------

    def _expire(self, now: float) -> None:
        while self._done and self._done[0] <= now - self.window:
            self._done.popleft()

    def acquire(self) -> None:
        start = time.time()
        with self._cond:
            while True:
                now = time.time()
                self._expire(now)
                wait: float | None = self._paused_until - now
                if wait is not None and wait > 0:
                    pass
                elif self._in_flight + len(self._done) < self.requests:
                    self._in_flight += 1
                    self.waited += now - start
                    return
                else:
                    # Full: the oldest completion leaving the window frees a slot;
                    # with none completed yet, a release will wake us.
                    wait = self._done[0] + self.window - now if self._done else None
                self._cond.wait(timeout=wait)

    def release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._done.append(time.time())
            self._cond.notify_all()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def pause(self, seconds: float) -> None:
        """The server said "slow down": nobody starts a request for `seconds`, in this
        process or the next one (saved at once: a killed run must not forget it)."""
        with self._cond:
            self._paused_until = max(self._paused_until, time.time() + seconds)
        self.save()

    # -- persistence -----------------------------------------------------------

    def _load(self) -> None:
        if self.state_file is None:
            return
        try:
            data = json.loads(self.state_file.read_text())
            stamps = sorted(float(t) for t in data.get("done", []))
            self._paused_until = float(data.get("paused_until", 0.0))
        except (OSError, ValueError, TypeError, AttributeError):
            return  # no or unreadable state: start with an empty window
        now = time.time()
        # A clock that went backwards must not block us for longer than a window.
        self._done.extend(min(t, now) for t in stamps[-self.requests:])
        self._paused_until = min(self._paused_until, now + self.window)
        self._expire(now)

    def save(self) -> None:
        if self.state_file is None:
            return
        with self._cond:
            self._expire(time.time())
            data = {"done": list(self._done), "paused_until": self._paused_until}
        with self._save_lock, contextlib.suppress(OSError):  # a lost state only costs caution
            private_dir(self.state_file.parent)
            atomic_write(self.state_file, json.dumps(data), 0o600)
