"""Full reconciles: schedule per entity (``RECON#``), records found gone from Visma (``GONE#``), and the
paged read of what was written (``REC#``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from decimal import Decimal

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.models import ReconcileStatus, RecordState, utc_iso

# Only what deletions need: the key, the Marketo id, the written version (for a flag at that version), the hash.
WRITTEN_PROJECTION = ("sk", "writtenKey", "marketoId", "writtenTs", "writtenModifiedAt", "writtenVersion",
                      "writtenHash")


class DynamoReconciles:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def status(self, connection: str, entity: str) -> ReconcileStatus:
        # Eventually consistent, at half the price: written when a full read completes (by an earlier poll, one at
        # a time under the lease, a tick or more ago; a continuation resumes its window and does not ask) or by
        # ``ml-connector reconcile``. A stale copy could only serve a request one poll later.
        item = self._t.get(keys.reconciles(connection), entity) or {}
        counts = {k: int(v) for k, v in (item.get("lastCounts") or {}).items() if isinstance(v, int | Decimal)}
        return ReconcileStatus(last_started=item.get("lastStarted"), requested_at=item.get("requestedAt"),
                               last_counts=counts)

    def request(self, connection: str, entity: str, at: datetime) -> None:
        self._t.update(keys.key(keys.reconciles(connection), entity), UpdateExpression="SET requestedAt = :at",
                       ExpressionAttributeValues={":at": utc_iso(at)})

    def completed(self, connection: str, entity: str, started: datetime, counts: dict[str, int]) -> None:
        try:
            self._t.update(keys.key(keys.reconciles(connection), entity),
                           UpdateExpression="SET lastStarted = :s, lastCounts = :c",
                           # forward only: an older full read completing late does not undo a newer one
                           ConditionExpression="attribute_not_exists(lastStarted) OR lastStarted <= :s",
                           ExpressionAttributeValues={":s": utc_iso(started), ":c": counts})
        except Exception as exc:
            if not self._t.conditional_failure(exc):
                raise

    def written(self, connection: str, entity: str) -> Iterator[RecordState]:
        for item in self._t.query(keys.records(connection, entity), projection=WRITTEN_PROJECTION):
            if item.get("writtenVersion") is None:
                continue  # a repair entry's hash removal left no write recorded
            yield RecordState(internal_id=int(item["sk"]), written_key=item.get("writtenKey"),
                              marketo_id=item.get("marketoId"), written_ts=item.get("writtenTs"),
                              written_modified_at=item.get("writtenModifiedAt"),
                              written_version=item.get("writtenVersion"), written_hash=item.get("writtenHash"))

    def gone(self, connection: str, entity: str) -> Iterator[int]:
        for item in self._t.query(keys.gone(connection, entity), projection=("sk",)):
            yield int(item["sk"])

    def mark_gone(self, connection: str, entity: str, internal_ids: Sequence[int], action: str, at: datetime) -> None:
        pk = keys.gone(connection, entity)
        self._t.put_many({**keys.key(pk, i), "action": action, "at": utc_iso(at)} for i in internal_ids)

    def unmark_gone(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        self._t.delete_many(keys.key(keys.gone(connection, entity), i) for i in internal_ids)

    def forget_written(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        self._t.delete_many(keys.key(keys.records(connection, entity), i) for i in internal_ids)

    def forget_content(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        for internal_id in internal_ids:
            try:
                self._t.update(keys.key(keys.records(connection, entity), internal_id),
                               UpdateExpression="REMOVE writtenHash", ConditionExpression="attribute_exists(pk)")
            except Exception as exc:  # never written: no item to create
                if not self._t.conditional_failure(exc):
                    raise
