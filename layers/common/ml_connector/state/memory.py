"""The state ports in process memory: for unit tests of the sync logic (same contracts as ``dynamodb``)."""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ml_connector.state.models import (
    JobRecord,
    PollRun,
    QuarantineEntry,
    QuarantineMark,
    ReconcileStatus,
    RecordState,
    RepairEntry,
    RunRecord,
    WatermarkEntry,
    WindowCheckpoint,
    WriteRecorded,
    WrittenRecord,
    parse_utc_iso,
    raced_with,
    utc_iso,
)
from ml_connector.state.ports import State, complete_each


class MemoryWatermarks:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], WatermarkEntry] = {}

    def get(self, connection: str, entity: str) -> datetime | None:
        entry = self.items.get((connection, entity))
        return parse_utc_iso(entry.watermark) if entry and entry.watermark else None

    def advance(self, connection: str, entity: str, watermark: datetime, summary: dict[str, Any]) -> None:
        current = self.items.get((connection, entity))
        value = utc_iso(watermark)
        if current is None or current.watermark is None or current.watermark <= value:
            self.items[(connection, entity)] = (current or WatermarkEntry()).model_copy(update={
                "watermark": value, "last_cycle": summary, "updated_at": utc_iso(datetime.now(UTC))})

    def polled(self, connection: str, entity: str, started: datetime, summary: dict[str, Any]) -> None:
        current = self.items.get((connection, entity), WatermarkEntry())
        if current.polled_at is None or current.polled_at <= utc_iso(started):
            self.items[(connection, entity)] = current.model_copy(update={
                "polled_at": utc_iso(started), "last_cycle": summary, "updated_at": utc_iso(datetime.now(UTC))})

    def entry(self, connection: str, entity: str) -> WatermarkEntry | None:
        return self.items.get((connection, entity))

    def swept(self, connection: str, entity: str, at: datetime) -> None:
        current = self.items.get((connection, entity), WatermarkEntry())
        if current.swept_at is None or current.swept_at <= utc_iso(at):
            self.items[(connection, entity)] = current.model_copy(update={"swept_at": utc_iso(at)})

    def complete(self, connection: str, entity: str, started: datetime, watermark: datetime | None, *,
                 swept: bool, summary: dict[str, Any]) -> None:
        complete_each(self, connection, entity, started, watermark, swept=swept, summary=summary)

    def entries(self, connection: str) -> dict[str, WatermarkEntry]:
        return {e: v for (c, e), v in self.items.items() if c == connection}


class MemoryRecordVersions:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str, int], RecordState] = {}
        self.written_at: dict[tuple[str, str, int], tuple[str, str | None]] = {}
        self.to_repair: dict[tuple[str, str, int], RepairEntry] = {}
        self._lock = threading.Lock()

    def get(self, connection: str, entity: str, internal_ids: Iterable[int], *, consistent: bool = True
            ) -> dict[int, RecordState]:
        return {i: self.items[(connection, entity, i)] for i in internal_ids if (connection, entity, i) in self.items}

    def mark_written(self, connection: str, records: Sequence[WrittenRecord]) -> list[WriteRecorded]:
        return [self._mark(connection, r) for r in records]

    def _mark(self, connection: str, r: WrittenRecord) -> WriteRecorded:
        key = (connection, r.entity, r.internal_id)
        with self._lock:  # the same check-and-set DynamoDB's condition makes
            current = self.items.get(key)
            if current and current.written_version and current.written_version > r.version:
                return WriteRecorded(recorded=False, raced=True)
            previous_at, previous_writer = self.written_at.get(key, (None, None))
            raced = raced_with(r, current.written_version if current else None, previous_at, previous_writer)
            self.items[key] = RecordState(
                internal_id=r.internal_id, written_modified_at=utc_iso(r.modified_at), written_version=r.version,
                written_ts=r.visma_ts, written_hash=r.content_hash, written_key=r.key, marketo_id=r.marketo_id)
            self.written_at[key] = (utc_iso(datetime.now(UTC)), r.writer)
            return WriteRecorded(recorded=True, raced=raced)

    def flag_for_repair(self, connection: str, entries: Sequence[RepairEntry]) -> None:
        with self._lock:
            for e in entries:
                key = (connection, e.entity, e.internal_id)
                if key in self.items:
                    self.items[key] = self.items[key].model_copy(update={"written_hash": None})
                self.to_repair[key] = e

    def repairs(self, connection: str, entity: str) -> list[RepairEntry]:
        return [e for (c, en, _), e in sorted(self.to_repair.items()) if (c, en) == (connection, entity)]

    def repaired(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        for internal_id in internal_ids:
            self.to_repair.pop((connection, entity, internal_id), None)


class MemoryQuarantine:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], QuarantineEntry] = {}

    def put(self, entry: QuarantineEntry) -> None:
        self.items[(entry.connection, entry.key)] = entry

    def entries(self, connection: str) -> list[QuarantineEntry]:
        return [e for (c, _), e in sorted(self.items.items()) if c == connection]

    def index(self, connection: str) -> dict[str, QuarantineMark]:
        return {k: QuarantineMark(stage=e.stage, version=e.version) for (c, k), e in self.items.items()
                if c == connection}

    def release(self, connection: str, entity: str, ref: str) -> None:
        self.items.pop((connection, f"{entity}#{ref}"), None)


class MemoryJobs:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], JobRecord] = {}
        self.parked_items: dict[tuple[str, str], JobRecord] = {}

    def put(self, job: JobRecord) -> None:
        self.items[(job.connection, job.job_id)] = job

    def get(self, connection: str, job_id: str) -> JobRecord | None:
        return self.items.get((connection, job_id))

    def all(self, connection: str) -> list[JobRecord]:
        return [j for (c, _), j in self.items.items() if c == connection]

    def park(self, job: JobRecord) -> None:
        self.put(job)
        self.parked_items[(job.connection, job.job_id)] = job

    def parked(self, connection: str) -> list[JobRecord]:
        return [j for (c, _), j in self.parked_items.items() if c == connection]

    def unpark(self, connection: str, job_id: str) -> None:
        self.parked_items.pop((connection, job_id), None)


class MemoryQuotaBlock:
    def __init__(self) -> None:
        self.items: dict[str, datetime] = {}

    def block(self, munchkin_id: str, until: datetime) -> None:
        self.items[munchkin_id] = until

    def blocked_until(self, munchkin_id: str, now: datetime) -> datetime | None:
        until = self.items.get(munchkin_id)
        return until if until and until > now else None


class MemoryLimiterItems:
    def __init__(self) -> None:
        self.next: dict[str, Decimal] = {}
        self.leases: dict[tuple[str, int], tuple[str, Decimal]] = {}
        self._lock = threading.Lock()

    def next_start(self, instance: str) -> Decimal | None:
        return self.next.get(instance)

    def swap_next_start(self, instance: str, previous: Decimal | None, following: Decimal) -> bool:
        with self._lock:
            if self.next.get(instance) != previous:
                return False
            self.next[instance] = following
            return True

    def take_lease(self, instance: str, index: int, owner: str, now: Decimal, until: Decimal) -> bool:
        with self._lock:
            held = self.leases.get((instance, index))
            if held is not None and held[1] >= now:
                return False
            self.leases[(instance, index)] = (owner, until)
            return True

    def give_back_lease(self, instance: str, index: int, owner: str) -> None:
        with self._lock:
            if self.leases.get((instance, index), ("",))[0] == owner:
                del self.leases[(instance, index)]


class MemoryPaymentFacts:
    """Buckets as DynamoDB's: ``get`` brings a bucket's neighbours too."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, int], dict[str, Any]] = {}

    @staticmethod
    def bucket(internal_id: int) -> int:
        return internal_id // 64

    def overdue(self, connection: str) -> Iterator[tuple[int, dict[str, Any]]]:
        for internal_id, values in self.all(connection):
            if any(values.get(f) for f in ("overdue_amount", "overdue_invoices", "max_dunning_level")):
                yield internal_id, values

    def get(self, connection: str, internal_ids: Iterable[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        buckets = {self.bucket(i) for i in internal_ids}
        for internal_id, values in self.all(connection):
            if self.bucket(internal_id) in buckets:
                yield internal_id, values

    def all(self, connection: str) -> Iterator[tuple[int, dict[str, Any]]]:
        yield from ((i, dict(v)) for (c, i), v in sorted(self.items.items()) if c == connection)

    def put(self, connection: str, facts: Iterable[tuple[int, dict[str, Any]]],
            overdue_before: Collection[int] = ()) -> None:
        for internal_id, values in facts:
            if any(v for k, v in values.items() if k != "number"):
                self.items[(connection, internal_id)] = dict(values)
            else:
                self.items.pop((connection, internal_id), None)


class MemorySweeps:
    """On the watermark entries, as in DynamoDB (``swept_at``)."""

    def __init__(self, watermarks: MemoryWatermarks) -> None:
        self._watermarks = watermarks

    def last(self, connection: str, entity: str) -> datetime | None:
        entry = self._watermarks.entry(connection, entity)
        return parse_utc_iso(entry.swept_at) if entry and entry.swept_at else None

    def done(self, connection: str, entity: str, at: datetime) -> None:
        self._watermarks.swept(connection, entity, at)


class MemoryCustomerNumbers:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], int] = {}

    def remember(self, connection: str, entity: str, pairs: Sequence[tuple[str, int]]) -> None:
        self.items.update({(connection, entity, n): i for n, i in pairs})

    def internal_ids(self, connection: str, entity: str, numbers: Iterable[str]) -> dict[str, int]:
        return {n: self.items[(connection, entity, n)] for n in numbers if (connection, entity, n) in self.items}


class MemoryReferenceHashes:
    def __init__(self) -> None:
        self.items: dict[str, dict[str, str]] = {}

    def get(self, connection: str) -> dict[str, str]:
        return dict(self.items.get(connection, {}))

    def put(self, connection: str, hashes: dict[str, str]) -> None:
        self.items.setdefault(connection, {}).update(hashes)


class MemoryRuns:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], RunRecord] = {}

    def record(self, run: RunRecord) -> None:
        self.items[(run.connection, run.started)] = run

    def recent(self, connection: str, limit: int) -> list[RunRecord]:
        runs = sorted((r for (c, _), r in self.items.items() if c == connection), key=lambda r: r.started)
        return runs[::-1][:limit]


class MemoryPollLeases:
    def __init__(self) -> None:
        self.items: dict[str, PollRun] = {}
        self._lock = threading.Lock()

    def start(self, connection: str, owner: str, tick: datetime, now: datetime, until: datetime, *,
              resume: bool = False) -> bool:
        with self._lock:  # the check-and-set DynamoDB's condition makes
            run = self.items.get(connection, PollRun())
            served = run.tick is not None and (run.tick > utc_iso(tick) if resume else run.tick >= utc_iso(tick))
            if run.leased(now) or served:
                return False
            self.items[connection] = PollRun(tick=utc_iso(tick), started_at=utc_iso(now), owner=owner,
                                             lease_until=utc_iso(until))
            return True

    def renew(self, connection: str, owner: str, until: datetime) -> bool:
        with self._lock:
            run = self.items.get(connection)
            if run is None or run.owner != owner:
                return False
            self.items[connection] = run.model_copy(update={"lease_until": utc_iso(until)})
            return True

    def finish(self, connection: str, owner: str, now: datetime, outcome: str) -> None:
        with self._lock:
            run = self.items.get(connection)
            if run is not None and run.owner == owner:
                self.items[connection] = run.model_copy(update={
                    "owner": None, "lease_until": None, "finished_at": utc_iso(now), "outcome": outcome})

    def get(self, connection: str) -> PollRun | None:
        return self.items.get(connection)

    def all(self, connections: Sequence[str]) -> dict[str, PollRun]:
        return {c: self.items[c] for c in connections if c in self.items}


class MemoryReconciles:
    def __init__(self, records: MemoryRecordVersions) -> None:
        self.items: dict[tuple[str, str], ReconcileStatus] = {}
        self.gone_marks: dict[tuple[str, str, int], str] = {}
        self._records = records

    def status(self, connection: str, entity: str) -> ReconcileStatus:
        return self.items.get((connection, entity), ReconcileStatus())

    def request(self, connection: str, entity: str, at: datetime) -> None:
        self.items[(connection, entity)] = self.status(connection, entity).model_copy(
            update={"requested_at": utc_iso(at)})

    def completed(self, connection: str, entity: str, started: datetime, counts: dict[str, int]) -> None:
        current = self.status(connection, entity)
        if current.last_started is None or current.last_started <= utc_iso(started):
            self.items[(connection, entity)] = current.model_copy(
                update={"last_started": utc_iso(started), "last_counts": dict(counts)})

    def written(self, connection: str, entity: str) -> Iterator[RecordState]:
        for (c, e, _), state in list(self._records.items.items()):
            if c == connection and e == entity and state.written_version is not None:
                yield state

    def gone(self, connection: str, entity: str) -> Iterator[int]:
        yield from [i for (c, e, i) in self.gone_marks if c == connection and e == entity]

    def mark_gone(self, connection: str, entity: str, internal_ids: Sequence[int], action: str, at: datetime) -> None:
        for internal_id in internal_ids:
            self.gone_marks[(connection, entity, internal_id)] = action

    def unmark_gone(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        for internal_id in internal_ids:
            self.gone_marks.pop((connection, entity, internal_id), None)

    def forget_written(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        for internal_id in internal_ids:
            self._records.items.pop((connection, entity, internal_id), None)


    def forget_content(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        for internal_id in internal_ids:
            key = (connection, entity, internal_id)
            if key in self._records.items:
                self._records.items[key] = self._records.items[key].model_copy(update={"written_hash": None})


class MemoryWindows:
    def __init__(self) -> None:
        self.items: dict[tuple[str, str], WindowCheckpoint] = {}
        self.saves = 0

    def get(self, connection: str, entity: str) -> WindowCheckpoint | None:
        return self.items.get((connection, entity))

    def is_open(self, connection: str, entity: str) -> bool:
        return (connection, entity) in self.items

    def save(self, connection: str, entity: str, checkpoint: WindowCheckpoint) -> None:
        self.items[(connection, entity)] = checkpoint.model_copy(deep=True)
        self.saves += 1

    def delete(self, connection: str, entity: str) -> None:
        self.items.pop((connection, entity), None)


def memory_state() -> State:
    records, watermarks = MemoryRecordVersions(), MemoryWatermarks()
    return State(
        watermarks=watermarks, records=records, reconciles=MemoryReconciles(records),
        quarantine=MemoryQuarantine(), jobs=MemoryJobs(), quota=MemoryQuotaBlock(), limiter=MemoryLimiterItems(),
        payments=MemoryPaymentFacts(), numbers=MemoryCustomerNumbers(), reference=MemoryReferenceHashes(),
        runs=MemoryRuns(), sweeps=MemorySweeps(watermarks), leases=MemoryPollLeases(), windows=MemoryWindows(),
    )
