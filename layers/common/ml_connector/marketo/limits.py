"""Our share of a Marketo instance's limits: calls per window and calls in flight.

Marketo counts 100 calls / 20 s and 10 concurrent calls per instance, shared with the customer's
other integrations; Adobe advises one integration to stay at 50 / 20 s and 5 concurrent. A limiter
hands out call slots within that budget. ``LocalCallLimiter`` holds it inside one process (threads);
``ml_connector.marketo.shared_limiter.SharedCallLimiter`` holds it across every writer invocation.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

from pydantic import BaseModel, Field

# Marketo counts a call when it arrives, we when we send it; 2 % more spacing absorbs network jitter.
JITTER_GUARD = 1.02


class CallBudget(BaseModel):
    calls: int = Field(default=50, ge=1, le=100)
    window_seconds: float = Field(default=20.0, gt=0)
    concurrency: int = Field(default=5, ge=1, le=10)

    @property
    def guarded_window(self) -> float:
        return self.window_seconds * JITTER_GUARD


class CallLimiter(Protocol):
    budget: CallBudget

    def slot(self, wait: Callable[[float, str], None]) -> AbstractContextManager[None]:
        """Hold one call slot for the duration of the with-block; ``wait(seconds, why)`` does the waiting."""
        ...


class LocalCallLimiter:
    """Sliding window plus a concurrency count, for the threads of one process."""

    def __init__(self, budget: CallBudget | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget or CallBudget()
        self._clock = clock
        self._starts: deque[float] = deque()
        self._in_flight = 0
        self._lock = threading.Lock()

    @contextmanager
    def slot(self, wait: Callable[[float, str], None]) -> Iterator[None]:
        while True:
            delay = self._try_acquire()
            if delay <= 0:
                break
            wait(delay, "Marketo call budget")
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    def _try_acquire(self) -> float:
        """0 when a slot was taken, else how long to wait before trying again."""
        with self._lock:
            now = self._clock()
            while self._starts and now - self._starts[0] >= self.budget.guarded_window:
                self._starts.popleft()
            if self._in_flight >= self.budget.concurrency:
                return 0.05
            if len(self._starts) >= self.budget.calls:
                return self._starts[0] + self.budget.guarded_window - now + 0.001
            self._starts.append(now)
            self._in_flight += 1
            return 0.0
