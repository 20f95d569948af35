"""The Marketo call budget held across every writer invocation, in the state table.

Lambda scales the writer out, so a per-process throttle multiplies with the number of containers.
Two kinds of state item per Marketo instance (``state.ports.LimiterItems``) hold the budget for all of them:

- Rate: a virtual schedule (GCRA / leaky bucket). One item keeps the next free start time; each call
  reserves the next slot with a conditional write and sleeps until it. Slots are window/calls apart,
  so no window of ``window_seconds`` ever holds more than ``calls`` starts, whoever makes them.
- Concurrency: ``concurrency`` lease items. A call holds one lease while in flight; a lease carries an
  expiry, so a crashed container cannot leak a slot for longer than one call timeout.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal

from ml_connector.marketo.limits import CallBudget
from ml_connector.state.ports import LimiterItems

LEASE_SECONDS = 180.0  # longer than the slowest Marketo call (Sync Custom Objects: 120 s) plus our timeout margin
LEASE_POLL_SECONDS = 0.05


class SharedCallLimiter:
    def __init__(self, items: LimiterItems, instance: str, budget: CallBudget | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.budget = budget or CallBudget()
        self._items = items
        self._instance = instance
        self._clock = clock
        self._owner = uuid.uuid4().hex

    @contextmanager
    def slot(self, wait: Callable[[float, str], None]) -> Iterator[None]:
        lease = self._acquire_lease(wait)
        try:
            start = self._reserve_start()
            wait(start - self._clock(), "Marketo call budget (shared)")
            yield
        finally:
            self._items.give_back_lease(self._instance, lease, self._owner)

    # -- rate ---------------------------------------------------------------------------------
    @property
    def interval(self) -> float:
        return self.budget.guarded_window / self.budget.calls

    def _reserve_start(self) -> float:
        """Reserve the next free start time for this call; returns it (epoch seconds)."""
        while True:
            previous = self._items.next_start(self._instance)
            now = self._clock()
            start = max(float(previous) if previous is not None else now, now)
            if self._items.swap_next_start(self._instance, previous, _decimal(start + self.interval, 6)):
                return start
            # another writer took the slot first: read again

    # -- concurrency ----------------------------------------------------------------------------
    def _acquire_lease(self, wait: Callable[[float, str], None]) -> int:
        slots = list(range(self.budget.concurrency))
        while True:
            random.shuffle(slots)  # spread contention over the lease items
            for index in slots:
                if self._try_lease(index):
                    return index
            wait(LEASE_POLL_SECONDS * random.uniform(1, 2), "Marketo concurrent-call budget (shared)")

    def _try_lease(self, index: int) -> bool:
        now = self._clock()
        return self._items.take_lease(self._instance, index, self._owner, _decimal(now, 3),
                                      _decimal(now + LEASE_SECONDS, 3))


def _decimal(value: float, places: int) -> Decimal:
    return Decimal(repr(round(value, places)))
