"""Marketo's daily quota (607), the whole story in one place.

When an instance's daily quota is used up, the writer blocks the instance until the quota resets
(midnight US Central) and parks each chunk it cannot write as a deferred job holding its messages;
those SQS messages count as handled, so they never reach the dead-letter queue. Every poll cycle
then sends the parked chunks whose reset has passed back to the queue.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

from ml_connector.observability import logger
from ml_connector.state import JobRecord, State, parse_utc_iso, utc_iso
from ml_connector.sync.messages import unpack_messages
from ml_connector.sync.ports import Outbox

CST = timezone(timedelta(hours=-6), "CST")
DEFERRED = "deferred"


def next_quota_reset(now: datetime) -> datetime:
    """Marketo's daily quota resets at 12:00 AM CST (UTC-6, fixed); plus a minute for clock differences."""
    central = now.astimezone(CST)
    midnight = (central + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight + timedelta(minutes=1)).astimezone(UTC)


class DeferredChunks:
    def __init__(self, state: State, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._state = state
        self._clock = clock

    def blocked_until(self, munchkin_id: str) -> datetime | None:
        """When the instance may be called again; None when it is not blocked."""
        return self._state.quota.blocked_until(munchkin_id, self._clock())

    def quota_used_up(self, munchkin_id: str) -> datetime:
        """Marketo answered 607: no writer calls the instance before the reset, which is returned."""
        reset = next_quota_reset(self._clock())
        self._state.quota.block(munchkin_id, reset)
        return reset

    def park(self, job: JobRecord, until: datetime) -> None:
        """Keep the chunk (``job.messages`` must hold it) until ``until``; the poll cycle sends it again."""
        self._state.jobs.park(job.model_copy(update={"status": DEFERRED, "retry_after": utc_iso(until)}))

    def parked(self, connection: str) -> list[JobRecord]:
        return self._state.jobs.parked(connection)

    def requeue_due(self, connections: list[str], outbox: Outbox) -> int:
        """Send the parked chunks whose quota reset has passed; returns how many messages were sent."""
        now = self._clock()
        sent = 0
        for connection in connections:
            for job in self.parked(connection):
                if job.retry_after and parse_utc_iso(job.retry_after) > now or not job.messages:
                    continue
                messages = unpack_messages(job.messages)
                outbox.send(messages)
                self._state.jobs.put(job.model_copy(update={"status": "requeued (quota reset)", "at": utc_iso(now)}))
                self._state.jobs.unpark(connection, job.job_id)
                sent += len(messages)
        if sent:
            logger.info("deferred chunks sent again after the Marketo quota reset", extra={"messages": sent})
        return sent
