"""Writer: SQS messages -> Marketo upserts in chunks, each chunk a replayable, idempotent job.

For one SQS batch:

1. Parse each message body; an unparseable one is quarantined with the reason (never retried, never
   blocking the rest).
2. Per connection and Marketo object keep the newest version of each record (SQS is at-least-once
   and unordered), then drop versions older than what Marketo already holds and content Marketo
   already has (same hash): a no-op cycle costs no Marketo call.
3. Chunk to <= 300 records and <= 1 MB. Each chunk's job ID is a hash of its connection, object and
   record versions, so a redelivered chunk gets the same ID; the Marketo call runs under
   Powertools idempotency keyed on that ID, so replaying a finished job does not write again.
4. Per-record results: created/updated move the record's written version; skipped records are
   quarantined with Marketo's reason. Only the messages of chunks that failed are reported back
   to SQS for retry; 607 (daily quota) stops writing and leaves the rest for later.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, ValidationError

from ml_connector.config import RuntimeSettings
from ml_connector.marketo.client import MarketoClient
from ml_connector.marketo.errors import MarketoError, MarketoQuotaExceeded
from ml_connector.marketo.payload import sync_envelope
from ml_connector.observability import emit, log_context, logger
from ml_connector.state.store import JobRecord, QuarantineEntry, StateStore, WrittenRecord, utc_iso
from ml_connector.sync.batching import chunk_by_limits, latest_per_key
from ml_connector.sync.messages import SyncMessage, pack_messages

ChunkWrite = Callable[..., list[dict[str, Any]]]


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    body: str


@dataclass
class _Item:
    message_id: str
    message: SyncMessage


CST = timezone(timedelta(hours=-6), "CST")
METRIC_BY_OUTCOME = {
    "created": "RecordsWritten", "updated": "RecordsWritten", "skipped": "RecordsQuarantined",
    "stale": "RecordsStale", "unchanged": "RecordsSkippedUnchanged", "superseded": "RecordsSuperseded",
    "marketo_calls": "MarketoSyncCalls",
}


@dataclass
class WriteReport:
    messages: int = 0
    invalid: int = 0
    superseded: int = 0
    stale: int = 0
    unchanged: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    marketo_calls: int = 0
    jobs: list[str] = field(default_factory=list)
    failed_message_ids: set[str] = field(default_factory=set)
    quota_exhausted: bool = False
    deferred: int = 0
    by_connection: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))

    def add(self, connection: str, outcome: str, count: int = 1) -> None:
        """Count an outcome in the totals and in the connection's metrics."""
        setattr(self, outcome, getattr(self, outcome) + count)
        self.by_connection[connection][METRIC_BY_OUTCOME[outcome]] += count

    def summary(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k not in ("failed_message_ids", "by_connection")}
        return {**data, "failed": len(self.failed_message_ids)}


class ChunkJob(BaseModel):
    """What one Marketo call writes; its ``job_id`` is the idempotency key."""

    job_id: str
    connection: str
    marketo_object: str
    dedupe_field: str
    records: list[dict[str, Any]]


def job_id_for(connection: str, marketo_object: str, messages: Iterable[SyncMessage]) -> str:
    versions = sorted(f"{m.key}@{m.visma_timestamp}@{m.content_hash}" for m in messages)
    digest = hashlib.sha256("|".join([connection, marketo_object, *versions]).encode("utf-8")).hexdigest()
    return digest[:32]


def next_quota_reset(now: datetime) -> datetime:
    """Marketo's daily quota resets at 12:00 AM CST (UTC-6, fixed); plus a minute for clock differences."""
    central = now.astimezone(CST)
    midnight = (central + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight + timedelta(minutes=1)).astimezone(UTC)


def write_chunk_to_marketo(client: MarketoClient, job: ChunkJob) -> list[dict[str, Any]]:
    results = client.sync_records(job.marketo_object, job.records, job.dedupe_field)
    return [r.model_dump(mode="json") for r in results]


class Writer:
    def __init__(
        self,
        settings: RuntimeSettings,
        store: StateStore,
        marketo_for: Callable[[str], MarketoClient],
        *,
        write_chunk: ChunkWrite | None = None,
        time_left: Callable[[], float] | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._marketo_for = marketo_for
        # Replaced by the handler with the Powertools-idempotent version of the same call.
        self._write_chunk = write_chunk or (lambda job: write_chunk_to_marketo(self._marketo_for(job.connection), job))
        self._time_left = time_left

    def process(self, inbound: list[InboundMessage]) -> WriteReport:
        report = WriteReport(messages=len(inbound))
        groups: dict[tuple[str, str], list[_Item]] = defaultdict(list)
        for item in self._parse(inbound, report):
            groups[(item.message.connection, item.message.marketo_object)].append(item)
        for (connection, marketo_object), items in groups.items():
            self._write_group(connection, marketo_object, items, report)
        self._emit_metrics(report)
        return report

    # -- parsing ----------------------------------------------------------------------------
    def _parse(self, inbound: list[InboundMessage], report: WriteReport) -> list[_Item]:
        items = []
        known = {c.id for c in self._settings.connections}
        for msg in inbound:
            try:
                parsed = SyncMessage.model_validate_json(msg.body)
                if parsed.connection not in known:
                    raise ValueError(f"unknown connection {parsed.connection!r}")
            except (ValidationError, ValueError) as exc:
                report.invalid += 1
                self._quarantine_message(msg, exc)
                continue
            items.append(_Item(msg.message_id, parsed))
        return items

    def _quarantine_message(self, msg: InboundMessage, exc: Exception) -> None:
        reason = str(exc).splitlines()[0] if not isinstance(exc, ValidationError) else "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        self._store.quarantine(QuarantineEntry(
            connection="_unknown", entity="message", ref=msg.message_id, stage="writer",
            reason=f"malformed SQS message: {reason}", raw=msg.body[:100_000], at=utc_iso(datetime.now(UTC)),
        ))
        logger.warning("malformed SQS message quarantined", extra={"message_id": msg.message_id, "reason": reason})

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
            states = self._store.get_records(connection, entity, (i.message.internal_id for i in entity_items))
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
    def _write_group(self, connection: str, marketo_object: str, items: list[_Item], report: WriteReport) -> None:
        pending = self._pending(connection, items, report)
        envelope = sync_envelope(marketo_object, items[0].message.dedupe_field)  # as the client will send it
        chunks = list(chunk_by_limits(pending, lambda i: i.message.marketo_record(), envelope=envelope))
        for index, chunk in enumerate(chunks):
            if self._out_of_time():
                for rest in chunks[index:]:
                    report.failed_message_ids.update(i.message_id for i in rest)
                logger.warning("writer out of time; remaining chunks go back to the queue")
                return
            self._write_one(connection, marketo_object, chunk, report)

    def _write_one(self, connection: str, marketo_object: str, chunk: list[_Item], report: WriteReport) -> None:
        """Write (or, with the daily quota gone, park) one chunk; its log lines carry the connection and job ID."""
        job = ChunkJob(
            job_id=job_id_for(connection, marketo_object, (i.message for i in chunk)),
            connection=connection, marketo_object=marketo_object, dedupe_field=chunk[0].message.dedupe_field,
            records=[i.message.marketo_record() for i in chunk],
        )
        report.jobs.append(job.job_id)
        with log_context(connection=connection, job_id=job.job_id):
            self._write_job(job, connection, chunk, report)

    def _write_job(self, job: ChunkJob, connection: str, chunk: list[_Item], report: WriteReport) -> None:
        marketo_object = job.marketo_object
        base = {"job_id": job.job_id, "connection": connection, "marketo_object": marketo_object,
                "records": len(chunk), "message_ids": [i.message_id for i in chunk], "at": utc_iso(datetime.now(UTC))}

        def packed() -> str:
            return pack_messages(i.message for i in chunk)

        munchkin = self._settings.connection(connection).marketo.munchkin_id
        blocked = self._store.marketo_blocked_until(munchkin)
        if blocked is not None:
            self._defer(job, base, packed(), blocked, "Marketo daily quota used up (deferred without a call)", report)
            return
        try:
            results = self._write_chunk(job=job)
        except MarketoQuotaExceeded as exc:
            reset = next_quota_reset(datetime.now(UTC))
            self._store.block_marketo(munchkin, reset)
            self._defer(job, base, packed(), reset, str(exc), report)
            logger.error("Marketo daily quota reached; writing stops until the reset", extra={"job_id": job.job_id})
            emit("MarketoQuotaExhausted", 1, connection=connection)
            return
        except Exception as exc:  # noqa: BLE001 - any failure sends just this chunk back for retry
            report.failed_message_ids.update(i.message_id for i in chunk)
            self._store.put_job(JobRecord(**base, status="failed", error=_safe_error(exc), messages=packed()))
            logger.exception("chunk write failed; its messages go back to the queue", extra={"job_id": job.job_id})
            emit("ChunkWriteFailures", 1, connection=connection)
            return
        counts = self._apply_results(connection, chunk, results, report)
        self._store.put_job(JobRecord(**base, status="done", **counts))

    def _defer(self, job: ChunkJob, base: dict[str, Any], packed: str, until: datetime, error: str,
               report: WriteReport) -> None:
        """Park the chunk in DynamoDB until the quota resets; its SQS messages count as handled, so they
        never reach the dead-letter queue. The poller sends them again after ``until``."""
        report.quota_exhausted = True
        report.deferred += len(base["message_ids"])
        self._store.put_job(JobRecord(**base, status="deferred", error=error, messages=packed,
                                      retry_after=utc_iso(until)))

    def _apply_results(
        self, connection: str, chunk: list[_Item], results: list[dict[str, Any]], report: WriteReport
    ) -> dict[str, int]:
        counts = {"created": 0, "updated": 0, "skipped": 0}
        written: list[SyncMessage] = []
        ids: list[str | None] = []
        by_seq = {int(r["seq"]): r for r in results}
        for seq, item in enumerate(chunk):
            result = by_seq.get(seq) or {"status": "skipped", "reasons": [{"code": "none", "message": "no result"}]}
            status = result.get("status")
            if status in ("created", "updated"):
                counts[status] += 1
                written.append(item.message)
                ids.append(str(result.get("id") or result.get("marketoGUID") or "") or None)
            else:
                counts["skipped"] += 1
                self._quarantine_skipped(connection, item.message, result)
        self._record_written(connection, written, ids)
        for outcome, count in counts.items():
            report.add(connection, outcome, count)
        report.add(connection, "marketo_calls")
        return counts

    def _record_written(self, connection: str, messages: list[SyncMessage], marketo_ids: list[str | None]) -> None:
        """What Marketo now holds, for the version guard; and earlier refusals those versions resolve."""
        self._store.mark_written(connection, [
            WrittenRecord(entity=m.entity, internal_id=m.internal_id, modified_at=m.modified_at,
                          visma_ts=m.visma_timestamp, version=m.version, content_hash=m.content_hash,
                          key=m.key, marketo_id=marketo_id)
            for m, marketo_id in zip(messages, marketo_ids, strict=True)])
        self._release_resolved(connection, messages)

    def _quarantine_skipped(self, connection: str, msg: SyncMessage, result: dict[str, Any]) -> None:
        reasons = result.get("reasons") or []
        reason = "; ".join(f"{r.get('code')}: {r.get('message')}" for r in reasons) or "skipped without reason"
        self._store.quarantine(QuarantineEntry(
            connection=connection, entity=msg.entity, ref=str(msg.internal_id), stage="writer",
            reason=f"Marketo skipped the record: {reason}", raw=msg.model_dump_json(), at=utc_iso(datetime.now(UTC)),
            version=msg.version,
        ))
        logger.warning("Marketo skipped a record", extra={"ref": msg.record_ref, "reason": reason})

    def _release_resolved(self, connection: str, messages: list[SyncMessage]) -> None:
        """Marketo accepted these versions: earlier refusals of older (or the same) versions are resolved."""
        if not messages:
            return
        marks = self._store.quarantine_marks(connection, (f"{m.entity}#{m.internal_id}" for m in messages))
        for msg in messages:
            mark = marks.get(f"{msg.entity}#{msg.internal_id}")
            if mark is not None and mark.stage == "writer" and (mark.version or "") <= msg.version:
                self._store.release(connection, msg.entity, str(msg.internal_id))

    def _out_of_time(self) -> bool:
        return self._time_left is not None and self._time_left() < self._settings.safety_margin_seconds

    @staticmethod
    def _emit_metrics(report: WriteReport) -> None:
        for connection, counts in report.by_connection.items():
            for name, value in counts.items():
                emit(name, value, connection=connection)
        if report.invalid:
            emit("RecordsQuarantined", report.invalid, connection="_unknown")


def _safe_error(exc: Exception) -> str:
    if isinstance(exc, MarketoError):
        return f"Marketo {exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {str(exc)[:500]}"
