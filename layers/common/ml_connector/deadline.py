"""The invocation's deadline: one object, created by the handler and passed explicitly to what needs it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Deadline:
    """Seconds left before the invocation ends: Lambda's remaining time, or none (CLI and local runs)."""

    time_left: Callable[[], float] | None = None

    @classmethod
    def of_lambda(cls, context: Any) -> Deadline:
        return cls(lambda: context.get_remaining_time_in_millis() / 1000)

    @classmethod
    def in_seconds(cls, seconds: float, clock: Callable[[], float] = time.monotonic) -> Deadline:
        end = clock() + seconds
        return cls(lambda: end - clock())

    def remaining(self) -> float:
        return float("inf") if self.time_left is None else self.time_left()

    def within(self, margin: float) -> bool:
        """Fewer than ``margin`` seconds are left: time to stop cleanly."""
        return self.remaining() < margin


NO_DEADLINE = Deadline()
