"""Fan-out polling: when a connection is due, the unit of poll work, and the lease per connection.

Due-ness counts on the schedule's clock: from the tick the connection's last *started* poll served to the
current tick, whatever the connection's place in the list, so no connection waits behind another. Counting
ticks (EventBridge's scheduled time, carried in the poll-work message) rather than the moment a poll
happened to start keeps a poll that waited in the queue from making its connection skip the next tick.

The lease (one state item per connection) lets one poll of a connection run at a time; it outlasts the
poller's timeout, so an invocation that dies leaves a lease that expires on its own.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import BaseModel

from ml_connector.deadline import NO_DEADLINE, Deadline
from ml_connector.state import PollRun, parse_utc_iso, utc_iso
from ml_connector.state.ports import PollLeases


class PollWork(BaseModel):
    """One message on the poll-work queue: poll this connection for this schedule tick. A continuation
    continues a window the poll of that tick left open (it may start although a poll for the tick did)."""

    connection: str
    tick: datetime
    continuation: bool = False


def is_due(last_tick: datetime | None, tick: datetime, interval_minutes: int | None,
           schedule_minutes: int | None) -> bool:
    """Without an interval of its own a connection is due on every tick. With one, it is due once that interval
    has passed since the tick its last poll started for; half a tick of tolerance picks the tick nearest to that
    moment, so seconds of scheduling jitter never cost a whole interval."""
    if interval_minutes is None or last_tick is None:
        return True
    tolerance = (schedule_minutes or 0) / 2
    return tick - last_tick >= timedelta(minutes=interval_minutes - tolerance)


def last_tick(run: PollRun | None) -> datetime | None:
    return parse_utc_iso(run.tick) if run is not None and run.tick else None


class Claim(StrEnum):
    STARTED = "started"  # this invocation holds the lease and polls
    COVERED = "covered"  # a poll for this tick or a later one started already: nothing is left to do
    BUSY = "busy"  # an older tick's poll still holds the lease: this tick is still to be polled after it
    GONE = "gone"  # the connection is no longer configured


class PollLease:
    def __init__(self, runs: PollLeases, connection: str, seconds: int,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._runs, self._connection, self._seconds, self._clock = runs, connection, seconds, clock
        self.owner = uuid.uuid4().hex
        self._until: datetime | None = None  # while this poll holds the lease: when it expires

    def claim(self, tick: datetime, *, continuation: bool = False) -> Claim:
        """``continuation``: the poll continues a window its tick's poll left open, so that tick does not
        count as covered (a later tick's poll does: it continues the window itself)."""
        now = self._clock()
        until = now + timedelta(seconds=self._seconds)
        if self._runs.start(self._connection, self.owner, tick, now, until, resume=continuation):
            self._until = until
            return Claim.STARTED
        run = self._runs.get(self._connection)
        covered = run is not None and run.tick is not None and run.tick >= utc_iso(tick)
        return Claim.COVERED if covered else Claim.BUSY

    def renew(self, deadline: Deadline = NO_DEADLINE) -> None:
        """Keep the lease for another full term (a run without a Lambda deadline can outlast one term). A lease
        that already outlasts the invocation's ``deadline`` is left as it is: a Lambda poller's lease is longer
        than its timeout, so its polls write no renewal (a write unit per entity and poll)."""
        now = self._clock()
        left = deadline.remaining()
        if self._until is not None and left != float("inf") and now + timedelta(seconds=left) <= self._until:
            return
        until = now + timedelta(seconds=self._seconds)
        if self._runs.renew(self._connection, self.owner, until):
            self._until = until

    def release(self, outcome: str) -> None:
        self._runs.finish(self._connection, self.owner, self._clock(), outcome)
