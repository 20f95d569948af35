"""Retry timing shared by the Visma and Marketo clients: capped exponential backoff with full jitter,
server hints (Retry-After) honoured, and every wait kept inside the Lambda's remaining time."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ml_connector.deadline import NO_DEADLINE, Deadline


class TimeBudgetExceeded(RuntimeError):
    """Waiting or calling again would run past the invocation's remaining time (minus its safety margin)."""


@dataclass(frozen=True)
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    max_attempts: int = 5

    def delay(self, attempt: int, hint: float | None = None, floor: float = 0.0) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (attempt counts from 1). A server hint wins when larger."""
        jittered = random.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
        return max(jittered, hint or 0.0, floor)


@dataclass
class TimeBudget:
    """Waits and request timeouts kept inside the invocation's deadline, less a margin."""

    deadline: Deadline = NO_DEADLINE
    margin: float = 5.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def remaining(self) -> float:
        return self.deadline.remaining() - self.margin

    def wait(self, seconds: float, why: str) -> None:
        if seconds <= 0:
            return
        if seconds > self.remaining():
            raise TimeBudgetExceeded(f"{why}: waiting {seconds:.1f}s would pass the invocation's time budget")
        self.sleep(seconds)

    def timeout(self, wanted: float) -> float:
        """A request timeout that still leaves the margin; raises when not even one second is left."""
        left = self.remaining()
        if left < 1.0:
            raise TimeBudgetExceeded("no time left for another call")
        return min(wanted, left)


class RepeatedFailures:
    """Visma throttles a request that already failed twice within five minutes ("same failed request",
    2 per 5 minutes): before an identical request is retried, wait until its failures in the window
    allow one more. Kept per container, so it holds across invocations."""

    def __init__(self, limit: int = 2, window_seconds: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def record(self, request: str) -> None:
        self._failures.setdefault(request, []).append(self._clock())

    def wait_before_retry(self, request: str) -> float:
        """Seconds until retrying ``request`` stays within the limit (0 when it already does)."""
        now = self._clock()
        recent = [t for t in self._failures.get(request, []) if now - t < self.window_seconds]
        self._failures[request] = recent
        if len(recent) < self.limit:
            return 0.0
        return recent[-self.limit] + self.window_seconds - now

