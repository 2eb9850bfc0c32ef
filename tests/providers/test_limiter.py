"""The client-side rate limiter: never more than N starts in any window, across processes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from mailctl.providers.http import RateLimiter


def _max_in_window(starts: list[float], window: float) -> int:
    starts = sorted(starts)
    return max(sum(1 for t in starts if s <= t < s + window) for s in starts)


def test_concurrent_requests_never_exceed_the_window() -> None:
    limiter = RateLimiter(4, 0.3)
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(3):
            with limiter.slot():
                with lock:
                    starts.append(time.time())
                time.sleep(0.02)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(starts) == 12
    assert _max_in_window(starts, 0.3) <= 4
    assert time.time() - t0 >= 0.6  # 12 requests at 4 per 0.3 s: at least two more windows


def test_the_window_survives_the_process(tmp_path: Path) -> None:
    state = tmp_path / "rl.json"
    first = RateLimiter(2, 0.5, state)
    for _ in range(2):
        with first.slot():
            pass
    first.save()
    second = RateLimiter(2, 0.5, state)  # a new process, moments later
    t0 = time.time()
    with second.slot():
        pass
    assert time.time() - t0 >= 0.4


def test_pause_holds_everyone() -> None:
    limiter = RateLimiter(100, 1.0)
    limiter.pause(0.3)
    t0 = time.time()
    with limiter.slot():
        pass
    assert time.time() - t0 >= 0.25
