"""The scheduled cycle, the one copy of it: parked chunks whose quota reset passed go back to the
queue, every connection is polled, then reference data is synced where due."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ml_connector.deadline import Deadline
from ml_connector.runtime import Runtime
from ml_connector.sync.deferred_chunks import DeferredChunks
from ml_connector.sync.poller import EntityPollReport
from ml_connector.sync.reference import ReferenceReport
from ml_connector.usecases.poll_connection import poll_connection, queue_poller
from ml_connector.usecases.sync_reference import sync_reference


class PollCycleReport(BaseModel):
    entities: list[EntityPollReport] = []
    reference: list[ReferenceReport] = []
    requeued_after_quota_reset: int = 0

    def failures(self) -> list[str]:
        return ([f"{r.connection}/{r.entity}: {r.error}" for r in self.entities if r.error]
                + [f"{r.connection}/reference: {r.error}" for r in self.reference if r.error])

    def summary(self) -> dict[str, Any]:
        return self.model_dump()


def run_poll_cycle(runtime: Runtime, deadline: Deadline, only: list[str] | None = None) -> PollCycleReport:
    connections = runtime.connections(only)
    report = PollCycleReport()
    report.requeued_after_quota_reset = DeferredChunks(runtime.state).requeue_due(
        [c.id for c in connections], runtime.outbox())
    poller = queue_poller(runtime, deadline)
    for connection in connections:
        report.entities.extend(poll_connection(runtime, connection, poller, deadline))
    report.reference = sync_reference(runtime, deadline, only)
    return report
