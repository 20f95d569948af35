"""Status: watermarks and lag per connection and entity, recent jobs, quarantine and queue depths."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from ml_connector.queues import SyncQueues
from ml_connector.runtime import Runtime
from ml_connector.state import JobRecord, parse_utc_iso


class EntityStatus(BaseModel):
    connection: str
    entity: str
    watermark: str | None
    lag_seconds: float | None
    last_cycle: dict[str, Any] | None
    last_updated: str | None
    last_reconcile: str | None = None  # when the last completed full reconcile started
    reconcile_requested: bool = False  # `ml-connector reconcile` asked for one that has not run yet
    last_reconcile_counts: dict[str, int] = {}


class Status(BaseModel):
    entities: list[EntityStatus]
    recent_jobs: list[JobRecord]
    quarantined: dict[str, int]
    queue_depth: int
    dead_letter_depth: int


def show_status(runtime: Runtime, queues: SyncQueues, *, jobs: int = 5) -> Status:
    now = datetime.now(UTC)
    entities, recent, quarantined = [], [], {}
    state = runtime.state
    for conn in runtime.connections():
        marks = state.watermarks.entries(conn.id)
        for entity in runtime.entities(conn):
            entry = marks.get(entity)
            reconcile = state.reconciles.status(conn.id, entity)
            mark = entry.watermark if entry else None
            polled = entry.polled_at if entry else None  # lag as the alarm sees it: since the last complete poll
            entities.append(EntityStatus(
                connection=conn.id, entity=entity, watermark=mark,
                lag_seconds=round((now - parse_utc_iso(polled)).total_seconds(), 1) if polled else None,
                last_cycle=entry.last_cycle if entry else None, last_updated=entry.updated_at if entry else None,
                last_reconcile=reconcile.last_started, reconcile_requested=reconcile.requested(),
                last_reconcile_counts=reconcile.last_counts,
            ))
        recent.extend(state.jobs.all(conn.id))
        quarantined[conn.id] = len(state.quarantine.entries(conn.id))
    quarantined["_unknown"] = len(state.quarantine.entries("_unknown"))
    recent.sort(key=lambda j: j.at, reverse=True)
    return Status(entities=entities, recent_jobs=recent[:jobs], quarantined=quarantined,
                  queue_depth=queues.depth(), dead_letter_depth=queues.depth(queues.dead_letter_url()))
