"""Full reconcile: the poller's ``FullReadObserver``.

A connection's entity is read in full (every record, not just changes since the watermark) when its
``reconcile_interval_hours`` have passed since the last full read completed, or when one was requested
(``ml-connector reconcile``). The poller already re-sends what differs from what was written (by the content
hash the writer recorded). This observer adds, per full read: drift repair (``drift``: fields edited by hand in
Marketo, when the connection enables it) and deletions (``deletions``: records no longer in Visma).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from ml_connector.config import ConnectionConfig, VismaEntity
from ml_connector.observability import MetricUnit, emit, logger
from ml_connector.state import State, parse_utc_iso
from ml_connector.sync.deletions import Deletions, IdSet, key_hash
from ml_connector.sync.drift import find_drift
from ml_connector.sync.mapping import EntityMapping
from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.poller import fresh_versions
from ml_connector.sync.ports import MarketoRecords, Outbox

# What a reconcile reports, always present (zero when nothing happened), in this order.
COUNTS = ("deleted_in_visma", "kept", "flagged", "deleted_in_marketo", "already_gone", "delete_failed",
          "unidentified", "key_in_use", "acted_again", "reappeared", "drifted")


class Reconciler:
    def __init__(self, state: State, outbox: Outbox, marketo_for: Callable[[str], MarketoRecords],
                 mapping_for: Callable[[ConnectionConfig, VismaEntity], EntityMapping]) -> None:
        self._state = state
        self._outbox = outbox
        self._marketo_for = marketo_for
        self._mapping_for = mapping_for
        self._mappings: dict[tuple[str, str], EntityMapping] = {}  # per invocation: asked for every page
        self._drifted: Counter[tuple[str, str]] = Counter()  # this invocation's drift, per connection and entity
        # Keys (key_hash) of the records this invocation's full reads mapped, where keys come from the record
        # (a lead's e-mail) and so can be shared: a gone record's key another record still has is left alone.
        self._live_keys: dict[tuple[str, str], set[int]] = defaultdict(set)

    def _mapping(self, connection: ConnectionConfig, entity: VismaEntity) -> EntityMapping:
        if (connection.id, entity) not in self._mappings:
            self._mappings[(connection.id, entity)] = self._mapping_for(connection, entity)
        return self._mappings[(connection.id, entity)]

    def full_read_due(self, connection: ConnectionConfig, entity: VismaEntity, now: datetime) -> bool:
        status = self._state.reconciles.status(connection.id, entity)
        if status.requested():
            return True
        hours = connection.reconcile_interval_hours
        if hours == 0:
            return False
        return status.last_started is None or now - parse_utc_iso(status.last_started) >= timedelta(hours=hours)

    def drifted(self, connection: ConnectionConfig, entity: VismaEntity, messages: Sequence[SyncMessage]) -> set[int]:
        if self._mapping(connection, entity).key_source is not None:
            self._live_keys[(connection.id, entity)].update(key_hash(m.key) for m in messages)
        if not connection.drift_repair or not messages:
            return set()
        # Only records Marketo should hold as mapped are read back: new and changed ones are sent anyway.
        fresh = {m.internal_id for m in fresh_versions(self._state, connection.id, entity, list(messages))}
        held = [m for m in messages if m.internal_id not in fresh]
        ids = find_drift(self._marketo_for(connection.id), held)
        if ids:  # else the writer would skip the resend: the recorded hash says Marketo holds it
            self._state.reconciles.forget_content(connection.id, entity, sorted(ids))
        self._drifted[(connection.id, entity)] += len(ids)
        emit("RecordsDrifted", len(ids), MetricUnit.Count, connection=connection.id, entity=entity)
        return ids

    def full_read_complete(self, connection: ConnectionConfig, entity: VismaEntity, seen_ids: Iterable[int],
                           started: datetime) -> dict[str, int]:
        mapping = self._mapping(connection, entity)
        deletions = Deletions(self._state, self._outbox, self._marketo_for(connection.id))
        counts = deletions.reconcile(connection.id, entity, mapping, IdSet(seen_ids), datetime.now(UTC),
                                     self._live_keys.pop((connection.id, entity), set()))
        counts["drifted"] += self._drifted.pop((connection.id, entity), 0)
        report = {name: counts[name] for name in COUNTS}
        self._state.reconciles.completed(connection.id, entity, started, report)
        dims = {"connection": connection.id, "entity": entity}
        emit("RecordsDeletedInVisma", report["deleted_in_visma"], MetricUnit.Count, **dims)
        emit("ReconcileCompleted", 1, MetricUnit.Count, **dims)
        logger.info("full reconcile completed", extra={**dims, "mode": mapping.deletions.mode, **report})
        return report
