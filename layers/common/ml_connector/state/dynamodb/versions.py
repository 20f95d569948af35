from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.models import RecordState, RepairEntry, WriteRecorded, WrittenRecord, raced_with, utc_iso

# Conditional record writes in flight at once (a chunk has up to 300). At the writer's 0.29 vCPU the 300 take
# about 0.4 s of wall time in CPU alone (0.36 ms each through the signed lane), about what 4 in flight need at a
# few milliseconds of DynamoDB latency; more runnable threads only delayed the thread giving back another
# chunk's Marketo lease (the latency bench at L = 2 s lost a start to it with 16).
PARALLEL_WRITES = 4
MARK_WRITTEN = ("SET writtenModifiedAt = :m, writtenVersion = :v, writtenTs = :t, writtenHash = :h, marketoId = :id, "
                "writtenKey = :k, writtenAt = :at, writtenBy = :by")
NOT_OLDER = "attribute_not_exists(writtenVersion) OR writtenVersion <= :v"  # the version guard


class DynamoRecordVersions:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def get(self, connection: str, entity: str, internal_ids: Iterable[int], *, consistent: bool = True
            ) -> dict[int, RecordState]:
        items = self._t.get_many(keys.records(connection, entity), internal_ids, consistent=consistent)
        states = (_record_state(i) for i in items)
        return {s.internal_id: s for s in states}

    def mark_written(self, connection: str, records: Sequence[WrittenRecord]) -> list[WriteRecorded]:
        """The conditional writes run in parallel: one after another they would cost a chunk of 300 records
        over a second of DynamoDB round trips. One ``writtenAt`` for them all, taken now: after the Marketo call
        that wrote them ended, which is all ``raced_with`` needs of it (a write of another version whose call
        started later did not overlap this one)."""
        at = utc_iso(datetime.now(UTC))
        if len(records) <= 1:
            return [self._mark_written(connection, r, at) for r in records]
        with ThreadPoolExecutor(max_workers=min(PARALLEL_WRITES, len(records))) as pool:
            return list(pool.map(lambda r: self._mark_written(connection, r, at), records))

    def _mark_written(self, connection: str, record: WrittenRecord, at: str) -> WriteRecorded:
        try:
            old = self._t.update_values(
                keys.key(keys.records(connection, record.entity), record.internal_id),
                {":m": utc_iso(record.modified_at), ":v": record.version, ":t": record.visma_ts,
                 ":h": record.content_hash, ":id": record.marketo_id, ":k": record.key, ":at": at,
                 ":by": record.writer},
                UpdateExpression=MARK_WRITTEN, ConditionExpression=NOT_OLDER,
                ReturnValues="UPDATED_OLD",  # what it replaced, at no extra cost
            )
        except Exception as exc:
            if self._t.conditional_failure(exc):
                return WriteRecorded(recorded=False, raced=True)  # a newer version was recorded first
            raise
        return WriteRecorded(recorded=True, raced=raced_with(record, old.get("writtenVersion"), old.get("writtenAt"),
                                                             old.get("writtenBy")))

    def flag_for_repair(self, connection: str, entries: Sequence[RepairEntry]) -> None:
        for entry in entries:
            self._t.update(keys.key(keys.records(connection, entry.entity), entry.internal_id),
                           UpdateExpression="REMOVE writtenHash")
        self._t.put_many({**keys.key(keys.repairs(connection, e.entity), e.internal_id), "number": e.number}
                         for e in entries)

    def repairs(self, connection: str, entity: str) -> list[RepairEntry]:
        return [RepairEntry(entity=entity, internal_id=int(i["sk"]), number=i["number"])
                for i in self._t.query(keys.repairs(connection, entity))]

    def repaired(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        self._t.delete_many(keys.key(keys.repairs(connection, entity), i) for i in internal_ids)


def _record_state(item: dict[str, Any]) -> RecordState:
    return RecordState(
        internal_id=int(item["sk"]),
        written_modified_at=item.get("writtenModifiedAt"),
        written_version=item.get("writtenVersion"),
        written_ts=item.get("writtenTs"),
        written_hash=item.get("writtenHash"),
        written_key=item.get("writtenKey"),
        marketo_id=item.get("marketoId"),
    )
