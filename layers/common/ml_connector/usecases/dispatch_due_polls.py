"""The schedule's tick: one poll-work message per connection that is due, on the poll-work queue.

Every due connection is sent on every tick, whatever its place in the list and whether its last poll
failed (its failures show in its own PollsFailed metric); the queue's event source runs the pollers, at
most PollerMaximumConcurrency at a time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from ml_connector.observability import MetricUnit, emit, logger
from ml_connector.runtime import Runtime
from ml_connector.state import utc_iso
from ml_connector.sync.poll_schedule import PollWork, is_due, last_tick


class DispatchReport(BaseModel):
    tick: str
    due: list[str] = []
    not_due: list[str] = []

    def summary(self) -> dict[str, Any]:
        return self.model_dump()


def dispatch_due_polls(runtime: Runtime, tick: datetime) -> DispatchReport:
    connections = runtime.connections()
    runs = runtime.state.leases.all([c.id for c in connections])
    report = DispatchReport(tick=utc_iso(tick))
    for connection in connections:
        due = is_due(last_tick(runs.get(connection.id)), tick, connection.poll_interval_minutes,
                     runtime.settings.schedule_minutes)
        (report.due if due else report.not_due).append(connection.id)
    runtime.poll_work_outbox().send_bodies([PollWork(connection=c, tick=tick).model_dump_json() for c in report.due])
    emit("PollsDispatched", len(report.due), MetricUnit.Count)
    logger.info("poll work sent", extra={"due": report.due, "not_due": report.not_due, "tick": report.tick})
    return report
