"""The scheduled cycle, the one copy of it: parked chunks whose quota reset passed go back to the
queue, every connection is polled, then reference data is synced where due. Each connection's cycle is
recorded as a run (``ml-connector runs``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from ml_connector.deadline import Deadline
from ml_connector.observability import logger
from ml_connector.runtime import Runtime
from ml_connector.state import RunRecord, utc_iso
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
    parked, outbox = DeferredChunks(runtime.state), runtime.outbox()
    requeued = {c.id: parked.requeue_due([c.id], outbox) for c in connections}
    report.requeued_after_quota_reset = sum(requeued.values())
    poller = queue_poller(runtime, deadline)
    spans: dict[str, tuple[str, str]] = {}
    for connection in connections:
        started = utc_iso(datetime.now(UTC))
        report.entities.extend(poll_connection(runtime, connection, poller, deadline))
        spans[connection.id] = (started, utc_iso(datetime.now(UTC)))
    report.reference = sync_reference(runtime, deadline, only)
    for connection in connections:
        _record_run(runtime, report, connection.id, spans[connection.id], requeued[connection.id])
    return report


def _record_run(runtime: Runtime, report: PollCycleReport, connection: str, span: tuple[str, str],
                requeued: int) -> None:
    entities = [r for r in report.entities if r.connection == connection]
    errors = [f"{r.entity}: {r.error}" for r in entities if r.error] + [
        f"reference: {r.error}" for r in report.reference if r.connection == connection and r.error]
    run = RunRecord(connection=connection, started=span[0], finished=span[1],
                    records_read=sum(r.records_read for r in entities),
                    messages_sent=sum(r.messages_sent for r in entities), requeued=requeued,
                    errors=len(errors), error=errors[0][:300] if errors else None)
    try:
        runtime.state.runs.record(run)
    except Exception as exc:  # noqa: BLE001 - the history is for operators; losing one entry must not fail a poll
        logger.warning("could not record the run", extra={"connection": connection, "error": str(exc)})
