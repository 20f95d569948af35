"""``ml-connector reconcile``: ask for a full reconcile of connections' entities and run it now.

The request is a flag in the state (``Reconciles.request``), so a reconcile that cannot start now (another poll
holds the connection's lease) or stops short of time is still served by the next poll."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from ml_connector.config import ConfigError, VismaEntity
from ml_connector.deadline import Deadline
from ml_connector.runtime import Runtime
from ml_connector.usecases.run_poll_cycle import PollCycleReport, run_poll_cycle


def request_reconcile(runtime: Runtime, connections: Sequence[str] = (), entities: Sequence[VismaEntity] = (),
                      now: datetime | None = None) -> list[tuple[str, VismaEntity]]:
    """Flag a full read of these connections' entities (default: all) at their next poll; what was flagged."""
    for connection_id in connections:
        runtime.settings.connection(connection_id)  # an unknown id fails, naming it
    at = now or datetime.now(UTC)
    flagged: list[tuple[str, VismaEntity]] = []
    for connection in runtime.connections(list(connections) or None):
        synced = runtime.entities(connection)
        unknown = [e for e in entities if e not in synced]
        if entities and len(unknown) == len(entities):
            raise ConfigError(f"--entity: connection {connection.id!r} syncs {', '.join(synced)}, not "
                              f"{', '.join(unknown)}")
        for entity in synced:
            if not entities or entity in entities:
                runtime.state.reconciles.request(connection.id, entity, at)
                flagged.append((connection.id, entity))
    return flagged


def reconcile_now(runtime: Runtime, deadline: Deadline, connections: Sequence[str] = (),
                  entities: Sequence[VismaEntity] = ()) -> PollCycleReport:
    """Request, then poll the connections now: the flagged entities are read in full and reconciled."""
    request_reconcile(runtime, connections, entities)
    return run_poll_cycle(runtime, deadline, list(connections) or None)
