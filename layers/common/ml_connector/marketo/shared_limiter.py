"""The Marketo call budget held across every writer invocation, in the state table.

Lambda scales the writer out, so a per-process throttle multiplies with the number of containers.
Two kinds of state item per Marketo instance (``state.ports.LimiterItems``) hold the budget for all of them:

- Rate: a virtual schedule (GCRA / leaky bucket). One item keeps the next free start time; each call
  reserves the next slot with a conditional write and sleeps until it. Slots are window/calls apart,
  so no window of ``window_seconds`` ever holds more than ``calls`` starts, whoever makes them.
- Concurrency: ``concurrency`` lease items. A call holds one lease while in flight; a lease carries an
  expiry, so a crashed container cannot leak a slot for longer than one call timeout.

A call first reserves its start, sleeps until it, then takes a free lease and goes: waiting for the rate
holds no lease and makes no requests. (Taking the lease first held it through the wait for the start, so
with more callers than leases most of them polled busy leases: ~300 failed conditional writes per Marketo
call in the latency bench, most of a writer's CPU.) When every lease is busy at the reserved start (the
concurrency budget binds, e.g. at L = 2 s with 5 calls in flight and 50 calls / 20 s, where a call ends
just as the next start comes), the call keeps trying for a grace of half the 2 % guard (0.2 s of a 20 s
window) and goes late if a lease frees within it.

The rule: a call goes only if it holds a lease no later than its reserved start + grace, by our clock after
the lease's write has answered. Otherwise that start goes unused (a lease taken too late is given back) and
the call reserves a later one. Why: reserved starts are guarded_window / calls apart, and a start at most
``grace`` late was reserved less than ``grace`` before any window it falls in, so the starts in a window of
``window_seconds`` were reserved within window + grace < guarded_window: at most ``calls`` of them. The
other half of the guard absorbs the way from here to Marketo (network, and a process held off the CPU
after the check). A caller that wakes late (held off the CPU: Lambda's 0.29 vCPU) must give its start up
too: going then let the latency bench's first call start 0.69 s late, so the 11th on-time start fell 19.7 s
after it, 11 in Marketo's 20 s window (606). Each retry reserves a strictly later start (a conditional
write), so the loop never spins: it ends at the first start the caller holds a lease in time for. One that
never could (every lease write slower than the grace) would retry until the invocation's time budget
(checked on each sleep) or Lambda's timeout stops it; ``late_starts_given_up`` and the wait's ``why`` show
the starts given up. No floor on the grace: a larger one eats the half of the guard kept for the way to
Marketo, and one of the whole guard breaks the bound. So a short window (a test's 1 s: a grace of 0.01 s,
less than one lease write to a local DynamoDB) leaves almost no start usable.
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
GRACE_POLL_SECONDS = 0.02  # how often a call in its grace tries the leases again
RATE_WAIT = "Marketo call budget (shared)"
BUSY_WAIT = "Marketo concurrent-call budget (shared)"
LATE_WAIT = "Marketo call budget (shared), a start given up: no lease held within its grace (woken late)"


class SharedCallLimiter:
    def __init__(self, items: LimiterItems, instance: str, budget: CallBudget | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.budget = budget or CallBudget()
        self._items = items
        self._instance = instance
        self._clock = clock
        self._owner = uuid.uuid4().hex
        self.late_starts_given_up = 0  # starts this limiter woke or took its lease too late to use

    @contextmanager
    def slot(self, wait: Callable[[float, str], None]) -> Iterator[None]:
        lease = self._lease_at_own_start(wait)
        try:
            yield
        finally:
            self._items.give_back_lease(self._instance, lease, self._owner)

    def _lease_at_own_start(self, wait: Callable[[float, str], None]) -> int:
        """Sleep until a start of our own, then take any free lease within the grace; else a later start of our own."""
        why = RATE_WAIT
        while True:
            start = self._reserve_start()  # strictly later than any start reserved before, so this loop moves on
            wait(start - self._clock(), why)
            lease, why = self._lease_within_grace(start, wait)
            if lease is not None:
                return lease

    @property
    def grace(self) -> float:
        """How late a call may start after its reserved start (see the module's docstring)."""
        return (self.budget.guarded_window - self.budget.window_seconds) / 2

    def _lease_within_grace(self, start: float, wait: Callable[[float, str], None]) -> tuple[int | None, str]:
        """A lease held no later than start + grace, or None and why the start was given up."""
        deadline = start + self.grace
        if self._clock() > deadline:  # woken too late (held off the CPU): going now could break the rate
            return self._given_up_late()
        while True:
            lease = self._any_free_lease()
            if lease is not None:
                if self._clock() <= deadline:
                    return lease, ""
                self._items.give_back_lease(self._instance, lease, self._owner)  # taken too late to go
                return self._given_up_late()
            left = deadline - self._clock()
            if left <= 0:
                return None, BUSY_WAIT
            wait(min(GRACE_POLL_SECONDS, left), BUSY_WAIT)

    def _given_up_late(self) -> tuple[None, str]:
        self.late_starts_given_up += 1
        return None, LATE_WAIT

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
    def _any_free_lease(self) -> int | None:
        slots = list(range(self.budget.concurrency))
        random.shuffle(slots)  # spread contention over the lease items
        return next((index for index in slots if self._try_lease(index)), None)

    def _try_lease(self, index: int) -> bool:
        now = self._clock()
        return self._items.take_lease(self._instance, index, self._owner, _decimal(now, 3),
                                      _decimal(now + LEASE_SECONDS, 3))


def _decimal(value: float, places: int) -> Decimal:
    return Decimal(repr(round(value, places)))
