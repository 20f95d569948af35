"""Poll one connection completely, under its lease: parked chunks whose quota reset passed go back to the
queue, every entity is polled, then reference data is synced where due. The fan-out poller runs it once per
poll-work message; the cycle the CLI runs (``run_poll_cycle``) composes it over every connection."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from ml_connector.config import ConfigError
from ml_connector.deadline import Deadline
from ml_connector.observability import MetricUnit, emit, logger
from ml_connector.runtime import Runtime
from ml_connector.state import RunRecord, utc_iso
from ml_connector.sync.deferred_chunks import DeferredChunks
from ml_connector.sync.poll_schedule import Claim, PollLease, PollWork
from ml_connector.sync.poller import EntityPollReport
from ml_connector.sync.reference import ReferenceReport
from ml_connector.usecases.poll_connection import poll_connection, queue_poller
from ml_connector.usecases.sync_reference import sync_reference


class ConnectionPollReport(BaseModel):
    connection: str
    tick: str
    claim: Claim
    entities: list[EntityPollReport] = []
    reference: list[ReferenceReport] = []
    requeued_after_quota_reset: int = 0
    error: str | None = None  # a failure outside the entities' own reports (requeue, lease)

    @property
    def continues(self) -> bool:
        """An entity's window stopped for time with a checkpoint: a new invocation should continue it now."""
        return any(r.continues for r in self.entities)

    def failures(self) -> list[str]:
        return ([f"{r.connection}/{r.entity}: {r.error}" for r in self.entities if r.error]
                + [f"{r.connection}/reference: {r.error}" for r in self.reference if r.error]
                + ([f"{self.connection}: {self.error}"] if self.error else []))


def poll_requested(runtime: Runtime, deadline: Deadline, work: PollWork) -> ConnectionPollReport:
    """One poll-work message: its connection, for its tick (a connection removed since is dropped). A window
    left open for lack of time is continued right away: a continuation message goes on the poll-work queue, so a
    new invocation takes it up without waiting for the next tick."""
    try:
        connection = runtime.settings.connection(work.connection)
    except ConfigError:
        logger.warning("poll work for a connection no longer configured", extra={"connection": work.connection})
        return ConnectionPollReport(connection=work.connection, tick=utc_iso(work.tick), claim=Claim.GONE)
    report = poll_one_connection(runtime, connection.id, deadline, work.tick, continuation=work.continuation)
    if report.continues:
        runtime.poll_work_outbox().send_bodies(
            [PollWork(connection=connection.id, tick=work.tick, continuation=True).model_dump_json()])
        logger.info("window continues in a new invocation", extra={"connection": connection.id})
    return report


def poll_one_connection(runtime: Runtime, connection_id: str, deadline: Deadline,
                        tick: datetime, *, continuation: bool = False) -> ConnectionPollReport:
    lease = PollLease(runtime.state.leases, connection_id, runtime.settings.poll_lease_seconds)
    report = ConnectionPollReport(connection=connection_id, tick=utc_iso(tick),
                                  claim=lease.claim(tick, continuation=continuation))
    if report.claim is not Claim.STARTED:
        logger.info("connection not polled", extra={"connection": connection_id, "claim": report.claim})
        return report
    started = utc_iso(datetime.now(UTC))
    try:
        _poll(runtime, connection_id, deadline, lease, report, continuation)
    except Exception as exc:
        # Reported, not raised: the message is consumed and the next due tick polls again. A bad configuration
        # (mapping, settings) still fails the invocation, so it also shows as a function error.
        logger.exception("poll failed", extra={"connection": connection_id})
        report.error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ConfigError):
            raise
    finally:
        lease.release("failed" if report.failures() else "ok")
        # Every poll reports 0 or 1, so a connection that keeps failing shows as a line at 1, not a gap.
        emit("PollsFailed", 1 if report.failures() else 0, MetricUnit.Count, connection=connection_id)
        _record_run(runtime, report, started)
    return report


def _record_run(runtime: Runtime, report: ConnectionPollReport, started: str) -> None:
    """One small item per poll, for ``ml-connector runs``; it expires with the job TTL."""
    errors = report.failures()
    run = RunRecord(connection=report.connection, started=started, finished=utc_iso(datetime.now(UTC)),
                    records_read=sum(r.records_read for r in report.entities),
                    messages_sent=sum(r.messages_sent for r in report.entities),
                    requeued=report.requeued_after_quota_reset, errors=len(errors),
                    error=errors[0][:300] if errors else None)
    try:
        runtime.state.runs.record(run)
    except Exception as exc:  # noqa: BLE001 - the history is for operators; losing one entry must not fail a poll
        logger.warning("could not record the run", extra={"connection": report.connection, "error": str(exc)})


def _poll(runtime: Runtime, connection_id: str, deadline: Deadline, lease: PollLease,
          report: ConnectionPollReport, continuation: bool) -> None:
    connection = runtime.settings.connection(connection_id)
    report.requeued_after_quota_reset = DeferredChunks(runtime.state).requeue_due([connection.id], runtime.outbox())
    report.entities = poll_connection(runtime, connection, queue_poller(runtime, deadline), deadline,
                                      before_each=lambda: lease.renew(deadline), open_windows_only=continuation)
    # The tick's own poll syncs reference data; a continuation only finishes the open windows, and an invocation
    # that ran out of time leaves it for the next tick (it stays due) rather than fail on the time left.
    if not continuation and not any(entity.stopped_early for entity in report.entities):
        report.reference = sync_reference(runtime, deadline, [connection.id])
