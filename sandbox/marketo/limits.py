"""Per-instance limits (reference §4): a sliding window of calls (606), calls in flight (615) and a
daily quota (607).

A call takes its place in the window and the day's count when it arrives, refused or not (a refusal
606/607/615 is not among the codes Marketo documents as not counted); an admitted call that ends with a
code that is not counted gives its place back.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.marketo.errors import MESSAGES, MarketoError


@dataclass(frozen=True)
class Slot:
    """An admitted call: when it entered the window, and how many calls were in flight with it."""

    started: float
    in_flight: int


class Limits:
    def __init__(self, rate_limit: tuple[int, float], max_concurrency: int, daily_quota: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.calls, self.window = int(rate_limit[0]), float(rate_limit[1])
        self.max_concurrency = max_concurrency
        self.daily_quota = daily_quota
        self._clock = clock
        self._daily_used = 0
        self._in_flight = 0
        self._window_starts: deque[float] = deque()
        self._lock = threading.Lock()

    @property
    def daily_used(self) -> int:
        with self._lock:
            return self._daily_used

    def set_daily_usage(self, used: int) -> None:
        with self._lock:
            self._daily_used = max(0, used)

    def rate_message(self) -> str:
        window = int(self.window) if self.window.is_integer() else self.window
        return MESSAGES["606"].format(calls=self.calls, window=window)

    def enter(self) -> Slot:
        """Admit a call, or raise the limit it breaks: 607, then 606, then 615. Either way it is charged."""
        with self._lock:
            now = self._clock()
            while self._window_starts and now - self._window_starts[0] >= self.window:
                self._window_starts.popleft()
            refusal = self._refusal()
            self._daily_used += 1
            self._window_starts.append(now)
            if refusal is not None:
                raise refusal
            self._in_flight += 1
            return Slot(now, self._in_flight)

    def _refusal(self) -> MarketoError | None:
        """The limit a new call breaks, judged before it is charged (caller holds the lock)."""
        if self._daily_used >= self.daily_quota:
            return MarketoError("607")
        if len(self._window_starts) >= self.calls:
            return MarketoError("606", self.rate_message())
        if self._in_flight >= self.max_concurrency:
            return MarketoError("615")
        return None

    def leave(self, slot: Slot, counted: bool) -> None:
        with self._lock:
            self._in_flight -= 1
            if counted:
                return
            self._daily_used = max(0, self._daily_used - 1)
            try:
                self._window_starts.remove(slot.started)
            except ValueError:
                pass  # already slid out of the window
