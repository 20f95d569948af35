"""The gateway's ``4-fixed-window`` rate limit: X requests per window per company + client (reference §7.1)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

POLICY = "4-fixed-window"
# Used when the sandbox is unlimited: the headers are still sent, with a budget nobody reaches.
UNLIMITED = (1_000_000_000, 3600)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the window resets

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_seconds), "X-RateLimit-Policy": POLICY}


@dataclass
class _Window:
    started: float
    used: int


class FixedWindowLimiter:
    """A window opens at a key's first call and lasts ``window_seconds``; refused calls do not count."""

    def __init__(self, limit: tuple[int, float] | None, clock: Callable[[], float] = time.monotonic) -> None:
        requests, seconds = limit if limit is not None else UNLIMITED
        self.limit = int(requests)
        self.window = float(seconds)
        if self.limit < 1 or self.window <= 0:
            raise ValueError("rate_limit must be (requests >= 1, window_seconds > 0)")
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def hit(self, key: tuple[str, str]) -> Decision:
        """Count a call if the budget allows it."""
        with self._lock:
            window = self._current(key)
            allowed = window.used < self.limit
            if allowed:
                window.used += 1
            return self._decision(window, allowed)

    def peek(self, key: tuple[str, str]) -> Decision:
        """The budget as it stands, without counting a call."""
        with self._lock:
            return self._decision(self._current(key), True)

    def _current(self, key: tuple[str, str]) -> _Window:
        now = self._clock()
        window = self._windows.get(key)
        if window is None or now - window.started >= self.window:
            window = _Window(now, 0)
            self._windows[key] = window
        return window

    def _decision(self, window: _Window, allowed: bool) -> Decision:
        left = self.window - (self._clock() - window.started)
        return Decision(allowed, self.limit, max(0, self.limit - window.used), max(1, math.ceil(left)))
