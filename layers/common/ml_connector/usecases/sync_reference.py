"""Reference data of each connection whose mapping asks for it, when its interval has passed."""

from __future__ import annotations

from datetime import UTC, datetime

from ml_connector.deadline import Deadline
from ml_connector.observability import logger
from ml_connector.retry import TimeBudgetExceeded
from ml_connector.runtime import Runtime
from ml_connector.sync.mapping import load_mapping
from ml_connector.sync.reference import ReferenceReport, ReferenceSync


def sync_reference(runtime: Runtime, deadline: Deadline, only: list[str] | None = None,
                   force: bool = False) -> list[ReferenceReport]:
    sync = ReferenceSync(runtime.state, clock=lambda: datetime.now(UTC))
    reports = []
    for connection in runtime.connections(only):
        section = load_mapping(connection.mapping).reference
        if section is None or not force and not sync.due(connection.id, connection.reference_interval_minutes):
            continue
        try:
            credentials = runtime.visma_credentials(connection)
            visma = runtime.visma_client(connection, credentials, deadline)
            marketo = runtime.marketo_client(connection.id, deadline)
            reports.append(sync.run(connection.id, visma, marketo, credentials.company_id, section))
        except TimeBudgetExceeded:
            # Not a failure: the invocation's time is up; it is still due, and the next poll syncs it.
            logger.warning("reference data sync postponed: no time left", extra={"connection": connection.id})
            reports.append(ReferenceReport(connection=connection.id, ran=False))
        except Exception as exc:
            logger.exception("reference data sync failed", extra={"connection": connection.id})
            reports.append(ReferenceReport(connection=connection.id, ran=True, error=f"{type(exc).__name__}: {exc}"))
    return reports
