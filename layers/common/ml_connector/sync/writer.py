"""Writer: SQS messages -> Marketo upserts in chunks, each chunk a replayable, idempotent job.

For one SQS batch (each message a pack of up to 300 records, or one record as earlier versions sent):

1. Unpack each message body; an unreadable body is quarantined whole with the reason, a bad record
   inside a pack alone (never retried, never blocking the rest).
2. Per connection and Marketo object keep the newest version of each record (SQS is at-least-once
   and unordered), then drop versions older than what Marketo already holds and content Marketo
   already has (same hash): a no-op cycle costs no Marketo call.
3. Merge what is left across messages and connections that write the same Marketo account (instance
   and credentials), object and dedupe field, and chunk it to <= 300 records and <= 1 MB: a batch
   leaves at most one part-filled chunk per account and object. Each chunk's job ID is a hash of its
   instance, object and record versions, so a redelivered chunk gets the same ID; the Marketo call runs
   under Powertools idempotency keyed on that ID, so replaying a finished job does not write again.
4. Per-record results go to each record's own connection: created/updated move the record's written
   version; skipped records are quarantined with Marketo's reason; the job is recorded per connection
   (its share of the chunk). Only the messages holding records of chunks that failed are reported back
   to SQS for retry; 607 (daily quota) parks chunks until the reset (``deferred_chunks``).
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from pydantic import BaseModel, ValidationError

from ml_connector.config import ConnectionConfig, MarketoSettings, RuntimeSettings
from ml_connector.deadline import NO_DEADLINE, Deadline
from ml_connector.marketo.errors import MarketoError, MarketoQuotaExceeded
from ml_connector.marketo.models import SyncResult
from ml_connector.marketo.payload import sync_envelope
from ml_connector.observability import emit, log_context, logger
from ml_connector.state import JobRecord, QuarantineEntry, QuarantineMark, RepairEntry, State, WrittenRecord, utc_iso
from ml_connector.sync.batching import chunk_by_limits, latest_per_key, rounds_of_distinct_keys
from ml_connector.sync.deferred_chunks import DeferredChunks
from ml_connector.sync.mapping import load_mapping
from ml_connector.sync.messages import SyncMessage, pack_messages, unpack_body
from ml_connector.sync.ports import MarketoWriter
from ml_connector.validation import describe


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    body: str


@dataclass
class _Item:
    message_id: str
    message: SyncMessage


NO_RESULT = SyncResult.model_validate({"seq": -1, "status": "skipped", "reasons": [{"code": "none",
                                                                                     "message": "no result"}]})
WRITER_ID = uuid.uuid4().hex[:12]  # this process (a Lambda container): recorded with each write
MAX_INSTANCES_AT_ONCE = 8  # Marketo instances a writer invocation works on side by side
COUNTS = ("superseded", "stale", "unchanged", "created", "updated", "skipped", "marketo_calls", "raced", "deferred")
METRIC_BY_OUTCOME = {
    "created": "RecordsWritten", "updated": "RecordsWritten", "skipped": "RecordsQuarantined",
    "stale": "RecordsStale", "unchanged": "RecordsSkippedUnchanged", "superseded": "RecordsSuperseded",
    "marketo_calls": "MarketoSyncCalls", "raced": "WriteRacesRepaired",
}


@dataclass
class WriteReport:
    messages: int = 0
    records: int = 0  # valid records the messages held
    invalid: int = 0
    superseded: int = 0
    stale: int = 0
    unchanged: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    marketo_calls: int = 0
    raced: int = 0  # written while another version's write was in flight: read again by the next poll
    jobs: list[str] = field(default_factory=list)
    failed_message_ids: set[str] = field(default_factory=set)
    quota_exhausted: bool = False
    deferred: int = 0
    by_connection: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, connection: str, outcome: str, count: int = 1) -> None:
        """Count an outcome in the totals and in the connection's metrics."""
        setattr(self, outcome, getattr(self, outcome) + count)
        self.by_connection[connection][METRIC_BY_OUTCOME[outcome]] += count

    def absorb(self, part: WriteReport) -> None:
        """Add another report's counts (one per Marketo instance, written side by side)."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(part, name))
        self.jobs.extend(part.jobs)
        self.failed_message_ids |= part.failed_message_ids
        self.quota_exhausted = self.quota_exhausted or part.quota_exhausted
        for connection, counts in part.by_connection.items():
            self.by_connection[connection].update(counts)

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("failed_message_ids", "by_connection")}
        return {**data, "failed": len(self.failed_message_ids)}


class ChunkJob(BaseModel):
    """What one Marketo call writes; its ``job_id`` is the idempotency key. ``connection`` is the one whose
    Marketo client makes the call (the chunk may hold records of other connections of the same account)."""

    job_id: str
    connection: str
    marketo_object: str
    dedupe_field: str
    records: list[dict[str, Any]]


class ChunkResults(BaseModel):
    """Marketo's per-record results for one chunk: what idempotency stores and a replay returns."""

    results: list[SyncResult]


ChunkWrite = Callable[..., ChunkResults]


def job_id_for(munchkin_id: str, marketo_object: str, messages: Iterable[SyncMessage]) -> str:
    versions = sorted(f"{m.connection}@{m.key}@{m.visma_timestamp}@{m.content_hash}" for m in messages)
    digest = hashlib.sha256("|".join([munchkin_id, marketo_object, *versions]).encode("utf-8")).hexdigest()
    return digest[:32]


def mapping_targets(connection: ConnectionConfig) -> dict[str, tuple[str, str]]:
    """(Marketo object, dedupe field) per entity, as the connection's mapping says."""
    mapping = load_mapping(connection.mapping)
    return {e: (s.target, s.dedupe_field) for e in mapping.entities if (s := mapping.for_entity(e)) is not None}


def write_chunk_to_marketo(client: MarketoWriter, job: ChunkJob) -> ChunkResults:
    return ChunkResults(results=client.sync_records(job.marketo_object, job.records, job.dedupe_field))


class Writer:
    def __init__(
        self,
        settings: RuntimeSettings,
        state: State,
        marketo_for: Callable[[str], MarketoWriter],
        *,
        write_chunk: ChunkWrite | None = None,
        deadline: Deadline = NO_DEADLINE,
    ) -> None:
        self._settings = settings
        self._state = state
        self._deferred = DeferredChunks(state)
        self._marketo_for = marketo_for
        # Replaced by the handler with the Powertools-idempotent version of the same call.
        self._write_chunk = write_chunk or (lambda job: write_chunk_to_marketo(self._marketo_for(job.connection), job))
        self._deadline = deadline
        self._targets: dict[str, dict[str, tuple[str, str]]] = {}  # per connection, read once per batch
        self._quarantined: dict[str, dict[str, QuarantineMark]] = {}

    def process(self, inbound: list[InboundMessage]) -> WriteReport:
        report = WriteReport(messages=len(inbound))
        by_instance: dict[str, list[_Item]] = defaultdict(list)
        for item in self._parse(inbound, report):
            by_instance[self._marketo(item.message.connection).munchkin_id].append(item)
        report.records = sum(len(items) for items in by_instance.values())
        # Each Marketo instance has its own budget and quota: written side by side, one instance waiting on
        # its budget (or parked by its quota) does not hold the others back.
        parts = [WriteReport() for _ in by_instance]
        work = list(zip(by_instance.values(), parts, strict=True))
        if len(work) == 1:
            self._write_instance(*work[0])
        elif work:
            with ThreadPoolExecutor(max_workers=min(len(work), MAX_INSTANCES_AT_ONCE)) as pool:
                list(pool.map(lambda job: self._write_instance(*job), work))
        for part in parts:
            report.absorb(part)
        self._emit_metrics(report)
        return report

    def _write_instance(self, items: list[_Item], report: WriteReport) -> None:
        by_connection: dict[tuple[str, str], list[_Item]] = defaultdict(list)
        for item in items:
            by_connection[(item.message.connection, item.message.marketo_object)].append(item)
        # One call carries records of every connection that writes with the same account, object and dedupe
        # field: ten connections' part-filled messages make one chunk, not ten.
        merged: dict[tuple[str, str, str], list[_Item]] = defaultdict(list)
        for (connection, marketo_object), group in by_connection.items():
            for item in self._pending(connection, group, report):
                merged[(self._account(connection), marketo_object, item.message.dedupe_field)].append(item)
        for (_account, marketo_object, dedupe_field), pending in merged.items():
            self._write_group(marketo_object, dedupe_field, pending, report)

    def _marketo(self, connection: str) -> MarketoSettings:
        return self._settings.connection(connection).marketo

    def _account(self, connection: str) -> str:
        """Connections with the same instance and credentials (one secret) write as one Marketo API user;
        with other credentials they stay apart (an API user's rights may differ, e.g. by workspace)."""
        marketo = self._marketo(connection)
        return f"{marketo.munchkin_id}|{marketo.endpoint_override or ''}|{marketo.secret_id}"

    # -- parsing ----------------------------------------------------------------------------
    def _parse(self, inbound: list[InboundMessage], report: WriteReport) -> list[_Item]:
        items = []
        for msg in inbound:
            try:
                unpacked = unpack_body(msg.body)
            except (ValidationError, ValueError) as exc:
                report.invalid += 1
                self._quarantine_message(msg.message_id, msg.body, exc)
                continue
            for refused in unpacked.refused:
                report.invalid += 1
                self._quarantine_message(f"{msg.message_id}#{refused.position}", refused.raw, refused.error)
            for message in unpacked.messages:
                try:
                    self._check_destination(message)
                except ValueError as exc:
                    report.invalid += 1
                    alone = len(unpacked.messages) == 1 and not unpacked.refused
                    ref = msg.message_id if alone else f"{msg.message_id}#{message.record_ref}"
                    self._quarantine_message(ref, msg.body if alone else message.model_dump_json(), exc)
                    continue
                items.append(_Item(msg.message_id, message))
        return items

    def _check_destination(self, message: SyncMessage) -> None:
        """The Marketo object goes into the request URL: only the connection's own mapping may name it."""
        if message.connection not in self._targets:
            if message.connection not in {c.id for c in self._settings.connections}:
                raise ValueError(f"unknown connection {message.connection!r}")
            self._targets[message.connection] = mapping_targets(self._settings.connection(message.connection))
        expected = self._targets[message.connection].get(message.entity)
        if expected != (message.marketo_object, message.dedupe_field):
            raise ValueError(f"{message.entity} of connection {message.connection!r} goes to "
                             f"{expected or 'no Marketo object'} by its mapping, not "
                             f"{(message.marketo_object, message.dedupe_field)}")

    def _quarantine_message(self, ref: str, raw: str, exc: Exception) -> None:
        """A body (``ref`` its message id) or a record of a pack (``<message id>#<where>``) that cannot be written."""
        reason = describe(exc) if isinstance(exc, ValidationError) else str(exc).splitlines()[0]
        self._state.quarantine.put(QuarantineEntry(
            connection="_unknown", entity="message", ref=ref, stage="writer",
            reason=f"malformed SQS message: {reason}", raw=raw[:100_000], at=utc_iso(datetime.now(UTC)),
        ))
        logger.warning("malformed SQS message quarantined", extra={"ref": ref, "reason": reason})

    # -- filtering --------------------------------------------------------------------------
    def _pending(self, connection: str, items: list[_Item], report: WriteReport) -> list[_Item]:
        latest, superseded = latest_per_key(items, key=lambda i: i.message.key,
                                            newer=lambda a, b: a.message.newer_than(b.message))
        report.add(connection, "superseded", len(superseded))
        by_entity: dict[str, list[_Item]] = defaultdict(list)
        for item in latest:
            by_entity[item.message.entity].append(item)
        pending = []
        for entity, entity_items in by_entity.items():
            # Eventually consistent, at half the price. A stale answer is a state the item held a moment earlier,
            # i.e. what a strongly consistent read returns when another writer records just after it: an
            # interleaving concurrent writers already produce. Writing on an older state is guarded: mark_written's
            # condition refuses a version older than the recorded one and reports it raced (as do its ReturnValues
            # for an overlapping write), and flag_for_repair has the next poll send the newest version again
            # (tests/unit/test_concurrent_writers.py). Skipping as unchanged on an older state (content reverted
            # A -> B -> A, B recorded meanwhile) is the same race as after a consistent read, its window longer by
            # the replication lag (usually well under a second); the next poll that reads the record (its overlap,
            # or the hourly deep sweep) sees the recorded hash differ and sends it again.
            states = self._state.records.get(connection, entity, (i.message.internal_id for i in entity_items),
                                             consistent=False)
            for item in entity_items:
                state = states.get(item.message.internal_id)
                written = state.written_version if state else None
                if written and written > item.message.version:
                    report.add(connection, "stale")
                elif state and state.written_hash == item.message.content_hash and \
                        state.written_key in (None, item.message.key):
                    report.add(connection, "unchanged")
                else:
                    # A new key (a contact's new e-mail) is written as a record of its own: moving the old
                    # record could take it from another Visma record that still has that key.
                    pending.append(item)
        return pending

    # -- writing ----------------------------------------------------------------------------
    def _write_group(self, marketo_object: str, dedupe_field: str, pending: list[_Item], report: WriteReport
                     ) -> None:
        envelope = sync_envelope(marketo_object, dedupe_field)  # as the client will send it
        # Two connections' records with one key are one Marketo record: never in one call (error 1036), and
        # their rounds are written one after the other.
        for same_keys in rounds_of_distinct_keys(pending, key=lambda i: i.message.key):
            chunks = list(chunk_by_limits(same_keys, lambda i: i.message.marketo_record(), envelope=envelope))
            self._write_chunks(marketo_object, chunks, report)

    def _write_chunks(self, marketo_object: str, chunks: list[list[_Item]], report: WriteReport) -> None:
        """Chunks of distinct records, up to the account's concurrent calls at a time: a batch of many chunks for
        one instance fills its budget instead of making one call at a time (the shared limiter still holds
        calls in flight at the budget across every writer)."""
        if not chunks:
            return
        parts = [WriteReport() for _ in chunks]

        def write(index: int) -> None:
            if self._out_of_time():
                parts[index].failed_message_ids.update(i.message_id for i in chunks[index])
                logger.warning("writer out of time; a chunk goes back to the queue")
                return
            self._write_one(marketo_object, chunks[index], parts[index])

        at_once = min(len(chunks), self._marketo(chunks[0][0].message.connection).max_concurrency)
        if at_once == 1:
            for index in range(len(chunks)):
                write(index)
        else:
            with ThreadPoolExecutor(max_workers=at_once) as pool:
                list(pool.map(write, range(len(chunks))))
        for part in parts:
            report.absorb(part)

    def _write_one(self, marketo_object: str, chunk: list[_Item], report: WriteReport) -> None:
        """Write (or, with the daily quota gone, park) one chunk; its log lines carry the job ID and the
        connection whose client calls Marketo."""
        caller = chunk[0].message.connection
        parts = _by_connection(chunk)
        job = ChunkJob(
            job_id=job_id_for(self._marketo(caller).munchkin_id, marketo_object, (i.message for i in chunk)),
            connection=caller, marketo_object=marketo_object, dedupe_field=chunk[0].message.dedupe_field,
            records=[i.message.marketo_record() for items in parts.values() for i in items],
        )
        report.jobs.append(job.job_id)
        with log_context(connection=caller, job_id=job.job_id):
            self._write_job(job, parts, report)

    def _write_job(self, job: ChunkJob, parts: dict[str, list[_Item]], report: WriteReport) -> None:
        """``parts``: the chunk's records per connection; each connection records its share of the job."""
        at = utc_iso(datetime.now(UTC))

        def job_records(status: str, *, keep_messages: bool, error: str | None = None) -> list[JobRecord]:
            return [JobRecord(job_id=job.job_id, connection=connection, marketo_object=job.marketo_object,
                              status=status, records=len(items), error=error, at=at,
                              message_ids=sorted({i.message_id for i in items}) if keep_messages else [],
                              messages=pack_messages(i.message for i in items) if keep_messages else None)
                    for connection, items in parts.items()]

        munchkin = self._marketo(job.connection).munchkin_id
        blocked = self._deferred.blocked_until(munchkin)
        if blocked is not None:
            self._defer(job_records("deferred", keep_messages=True,
                                    error="Marketo daily quota used up (deferred without a call)"), blocked, report)
            return
        call_started = datetime.now(UTC)
        try:
            results = self._write_chunk(job=job).results
        except MarketoQuotaExceeded as exc:
            self._defer(job_records("deferred", keep_messages=True, error=str(exc)),
                        self._deferred.quota_used_up(munchkin), report)
            logger.error("Marketo daily quota reached; writing stops until the reset", extra={"job_id": job.job_id})
            emit("MarketoQuotaExhausted", 1, connection=job.connection)
            return
        except Exception as exc:  # noqa: BLE001 - any failure sends just this chunk's messages back for retry
            report.failed_message_ids.update(i.message_id for items in parts.values() for i in items)
            for record in job_records("failed", keep_messages=True, error=_safe_error(exc)):
                self._state.jobs.put(record)
            logger.exception("chunk write failed; its messages go back to the queue", extra={"job_id": job.job_id})
            emit("ChunkWriteFailures", 1, connection=job.connection)
            return
        report.add(job.connection, "marketo_calls")  # the call is counted once, for the connection that made it
        by_seq = {r.seq: r for r in results}
        in_order = iter([by_seq.get(seq) for seq in range(len(job.records))])  # job.records: parts concatenated
        # A done job keeps its counts, not its message ids: a smaller item costs fewer write units.
        for record in job_records("done", keep_messages=False):
            items = parts[record.connection]
            counts = self._apply_results(record.connection, items, list(islice(in_order, len(items))),
                                         call_started, report)
            self._state.jobs.put(record.model_copy(update=counts))

    def _defer(self, records: list[JobRecord], until: datetime, report: WriteReport) -> None:
        report.quota_exhausted = True
        report.deferred += sum(r.records for r in records)
        for record in records:
            self._deferred.park(record, until)

    def _apply_results(
        self, connection: str, items: list[_Item], results: list[SyncResult | None], call_started: datetime,
        report: WriteReport,
    ) -> dict[str, int]:
        """One connection's records of a chunk, with Marketo's result for each (None: Marketo gave none)."""
        counts = {"created": 0, "updated": 0, "skipped": 0}
        written: list[SyncMessage] = []
        ids: list[str | None] = []
        for item, result in zip(items, results, strict=True):
            if result is not None and result.status in ("created", "updated"):
                counts[result.status] += 1
                written.append(item.message)
                ids.append(str(result.id or result.marketoGUID or "") or None)
            else:
                counts["skipped"] += 1
                self._quarantine_skipped(connection, item.message, result or NO_RESULT)
        self._record_written(connection, written, ids, call_started, report)
        for outcome, count in counts.items():
            report.add(connection, outcome, count)
        return counts

    def _record_written(self, connection: str, messages: list[SyncMessage], marketo_ids: list[str | None],
                        call_started: datetime, report: WriteReport) -> None:
        """What Marketo now holds, for the version guard; and earlier refusals those versions resolve.

        Writers run concurrently: a write of another version of the same record that overlapped this one
        may have landed in Marketo after it, leaving the older version there. Such records are sent again
        from Visma by the next poll (``flag_for_repair``), so Marketo ends on the newest version."""
        outcomes = self._state.records.mark_written(connection, [
            WrittenRecord(entity=m.entity, internal_id=m.internal_id, modified_at=m.modified_at,
                          visma_ts=m.visma_timestamp, version=m.version, content_hash=m.content_hash,
                          key=m.key, marketo_id=marketo_id, call_started=call_started, writer=WRITER_ID)
            for m, marketo_id in zip(messages, marketo_ids, strict=True)])
        raced = [m for m, outcome in zip(messages, outcomes, strict=True) if outcome.raced]
        if raced:
            self._state.records.flag_for_repair(connection, [
                RepairEntry(entity=m.entity, internal_id=m.internal_id, number=m.number) for m in raced])
            report.add(connection, "raced", len(raced))
            logger.warning("concurrent writes of other versions overlapped; these records are read again",
                           extra={"records": [m.record_ref for m in raced[:20]], "count": len(raced)})
        self._release_resolved(connection, messages)

    def _quarantine_skipped(self, connection: str, msg: SyncMessage, result: SyncResult) -> None:
        reason = "; ".join(f"{r.code}: {r.message}" for r in result.reasons) or "skipped without reason"
        self._state.quarantine.put(QuarantineEntry(
            connection=connection, entity=msg.entity, ref=str(msg.internal_id), stage="writer",
            reason=f"Marketo skipped the record: {reason}", raw=msg.model_dump_json(), at=utc_iso(datetime.now(UTC)),
            version=msg.version,
        ))
        self._quarantine_index(connection)[f"{msg.entity}#{msg.internal_id}"] = QuarantineMark(
            stage="writer", version=msg.version)
        logger.warning("Marketo skipped a record", extra={"ref": msg.record_ref, "reason": reason})

    def _release_resolved(self, connection: str, messages: list[SyncMessage]) -> None:
        """Marketo accepted these versions: earlier refusals of older (or the same) versions are resolved."""
        if not messages:
            return
        marks = self._quarantine_index(connection)
        for msg in messages:
            mark = marks.get(f"{msg.entity}#{msg.internal_id}")
            if mark is not None and mark.stage == "writer" and (mark.version or "") <= msg.version:
                self._state.quarantine.release(connection, msg.entity, str(msg.internal_id))
                del marks[f"{msg.entity}#{msg.internal_id}"]

    def _quarantine_index(self, connection: str) -> dict[str, QuarantineMark]:
        """Read once per invocation and connection (one small query, not a read per record)."""
        if connection not in self._quarantined:
            self._quarantined[connection] = self._state.quarantine.index(connection)
        return self._quarantined[connection]

    def _out_of_time(self) -> bool:
        return self._deadline.within(self._settings.safety_margin_seconds)

    @staticmethod
    def _emit_metrics(report: WriteReport) -> None:
        for connection, counts in report.by_connection.items():
            for name, value in counts.items():
                emit(name, value, connection=connection)
        if report.invalid:
            emit("RecordsQuarantined", report.invalid, connection="_unknown")


def _by_connection(chunk: list[_Item]) -> dict[str, list[_Item]]:
    """The chunk's records per connection, each connection's in chunk order, connections in order of first
    record: concatenated, they are the chunk in the order Marketo's results (``seq``) number them."""
    parts: dict[str, list[_Item]] = defaultdict(list)
    for item in chunk:
        parts[item.message.connection].append(item)
    return dict(parts)


def _safe_error(exc: Exception) -> str:
    if isinstance(exc, MarketoError):
        return f"Marketo {exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {str(exc)[:500]}"
