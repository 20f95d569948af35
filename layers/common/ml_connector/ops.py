"""Operator actions behind the CLI: status, job replay, DLQ redrive and quarantine retry."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, cast

import boto3
from pydantic import BaseModel, ValidationError

from ml_connector.config import ConfigError, VismaEntity
from ml_connector.runtime import Runtime
from ml_connector.state.store import JobRecord, QuarantineEntry, parse_utc_iso
from ml_connector.sync.messages import SyncMessage, unpack_messages
from ml_connector.sync.outbox import SqsOutbox
from ml_connector.sync.poller import EntityContext, RecordWithoutKey, build_message
from ml_connector.sync.writer import InboundMessage


class OperationError(RuntimeError):
    """An operator action cannot be carried out; the message says why."""


class EntityStatus(BaseModel):
    connection: str
    entity: str
    watermark: str | None
    lag_seconds: float | None
    last_cycle: dict[str, Any] | None
    last_updated: str | None


class Status(BaseModel):
    entities: list[EntityStatus]
    recent_jobs: list[JobRecord]
    quarantined: dict[str, int]
    queue_depth: int
    dead_letter_depth: int


class DrainSummary(BaseModel):
    batches: int = 0
    messages: int = 0
    failed: int = 0
    created: int = 0
    updated: int = 0
    skipped: int = 0
    unchanged: int = 0


class QuarantineRetry(BaseModel):
    requeued: int = 0
    still_invalid: int = 0
    not_retryable: int = 0


class Operations:
    def __init__(self, runtime: Runtime, *, sqs: Any | None = None) -> None:
        self._runtime = runtime
        self._store = runtime.store
        self._sqs = sqs or boto3.client("sqs")

    @property
    def _queue_url(self) -> str:
        url = self._runtime.settings.sync_queue_url
        if not url:
            raise ConfigError("SYNC_QUEUE_URL: required for this command")
        return url

    # -- status -----------------------------------------------------------------------------
    def status(self, *, jobs: int = 5) -> Status:
        now = datetime.now(UTC)
        entities, recent, quarantined = [], [], {}
        for conn in self._runtime.settings.connections:
            marks = self._store.watermarks(conn.id)
            for entity in self._runtime.entities(conn):
                item = marks.get(entity, {})
                mark = item.get("watermark")
                entities.append(EntityStatus(
                    connection=conn.id, entity=entity, watermark=mark,
                    lag_seconds=round((now - parse_utc_iso(mark)).total_seconds(), 1) if mark else None,
                    last_cycle=json.loads(item["lastCycle"]) if item.get("lastCycle") else None,
                    last_updated=item.get("updatedAt"),
                ))
            recent.extend(self._store.jobs(conn.id))
            quarantined[conn.id] = len(self._store.quarantined(conn.id))
        quarantined["_unknown"] = len(self._store.quarantined("_unknown"))
        recent.sort(key=lambda j: j.at, reverse=True)
        return Status(entities=entities, recent_jobs=recent[:jobs], quarantined=quarantined,
                      queue_depth=self._depth(self._queue_url), dead_letter_depth=self._depth(self.dead_letter_url()))

    def _depth(self, url: str) -> int:
        attrs = self._sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return sum(int(attrs.get(name, 0)) for name in ("ApproximateNumberOfMessages",
                                                        "ApproximateNumberOfMessagesNotVisible"))

    def dead_letter_url(self) -> str:
        attrs = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["RedrivePolicy"])
        policy = attrs.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            raise OperationError("the sync queue has no dead-letter queue configured")
        name = json.loads(policy)["deadLetterTargetArn"].rsplit(":", 1)[-1]
        return str(self._sqs.get_queue_url(QueueName=name)["QueueUrl"])

    # -- jobs -------------------------------------------------------------------------------
    def find_job(self, job_id: str) -> JobRecord:
        for conn in self._runtime.settings.connections:
            job = self._store.get_job(conn.id, job_id)
            if job is not None:
                return job
        raise OperationError(f"no job {job_id} (jobs are kept {self._runtime.settings.job_ttl_days} days)")

    def replay(self, job_id: str) -> int:
        """Send a failed job's messages to the queue again; the writer's guards make this safe to repeat."""
        job = self.find_job(job_id)
        if not job.messages:
            raise OperationError(f"job {job_id} is {job.status}; only failed or deferred jobs keep their messages")
        messages = unpack_messages(job.messages)
        SqsOutbox(self._queue_url, client=self._sqs).send(messages)
        self._store.put_job(job.model_copy(update={"status": f"replayed ({job.status})",
                                                   "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}))
        return len(messages)

    # -- queue ------------------------------------------------------------------------------
    def queue_depth(self) -> int:
        return self._depth(self._queue_url)

    def drain(self, *, batch_size: int = 300, visibility_timeout: int = 120,
              on_batch: Callable[[int], None] | None = None) -> DrainSummary:
        """Feed the sync queue to the writer in batches until it is empty (what the SQS event source does);
        ``on_batch(messages)`` reports progress."""
        writer = self._runtime.writer(time_left=None)
        summary = DrainSummary()
        while True:
            batch = self._receive(batch_size, visibility_timeout)
            if not batch:
                return summary
            report = writer.process([InboundMessage(m["MessageId"], m["Body"]) for m in batch])
            summary.batches += 1
            summary.messages += len(batch)
            for name in ("created", "updated", "skipped", "unchanged"):
                setattr(summary, name, getattr(summary, name) + getattr(report, name))
            done = [m for m in batch if m["MessageId"] not in report.failed_message_ids]
            self._delete(done)
            summary.failed += len(batch) - len(done)
            if on_batch is not None:
                on_batch(len(batch))
            if not done:
                # Nothing moved: leave the rest to the queue's own retries and DLQ.
                return summary

    def _receive(self, limit: int, visibility_timeout: int) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < limit:
            got = self._sqs.receive_message(
                QueueUrl=self._queue_url, MaxNumberOfMessages=min(10, limit - len(messages)), WaitTimeSeconds=0,
                VisibilityTimeout=visibility_timeout,
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        return messages

    def _delete(self, messages: list[dict[str, Any]], queue_url: str | None = None) -> None:
        for start in range(0, len(messages), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(messages[start : start + 10])]
            self._sqs.delete_message_batch(QueueUrl=queue_url or self._queue_url, Entries=entries)

    # -- dead-letter queue ------------------------------------------------------------------
    def redrive(self, *, limit: int | None = None) -> int:
        """Move messages from the dead-letter queue back to the sync queue."""
        dlq, moved = self.dead_letter_url(), 0
        while limit is None or moved < limit:
            batch = self._sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0,
                                              VisibilityTimeout=60).get("Messages", [])
            if not batch:
                break
            entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(batch)]
            sent = self._sqs.send_message_batch(QueueUrl=self._queue_url, Entries=entries)
            ok = {e["Id"] for e in sent.get("Successful", [])}
            done = [m for i, m in enumerate(batch) if str(i) in ok]
            self._delete(done, dlq)
            moved += len(done)
            if not done:
                break
        return moved

    # -- quarantine -------------------------------------------------------------------------
    def quarantine_list(self, connection: str | None = None) -> list[QuarantineEntry]:
        ids = [connection] if connection else [c.id for c in self._runtime.settings.connections] + ["_unknown"]
        return [e for conn in ids for e in self._store.quarantined(conn)]

    def quarantine_retry(self, connection: str | None = None) -> QuarantineRetry:
        """Re-validate quarantined records (e.g. after a mapping or data fix) and enqueue those now valid."""
        result = QuarantineRetry()
        outbox = SqsOutbox(self._queue_url, client=self._sqs)
        for entry in self.quarantine_list(connection):
            message = self._retry_message(entry)
            if message is None:
                if entry.stage == "poller":
                    result.still_invalid += 1
                else:
                    result.not_retryable += 1
                continue
            outbox.send([message])
            self._store.release(entry.connection, entry.entity, entry.ref)
            result.requeued += 1
        return result

    def _retry_message(self, entry: QuarantineEntry) -> SyncMessage | None:
        try:
            if entry.stage == "writer" and entry.entity != "message":
                return SyncMessage.model_validate_json(entry.raw)
            if entry.stage == "poller":
                return self._rebuild(entry)
        except (ValidationError, ValueError, TypeError, RecordWithoutKey):
            return None
        return None

    def _rebuild(self, entry: QuarantineEntry) -> SyncMessage:
        conn = self._runtime.settings.connection(entry.connection)
        entity = cast(VismaEntity, entry.entity)
        mapping = self._runtime.mappings(conn)[entity]
        credentials = self._runtime.visma_credentials(conn)
        client = self._runtime.visma_client(conn, credentials, None)
        keys = self._runtime.company_keys(conn, entity, client, credentials.company_id)
        return build_message(json.loads(entry.raw), EntityContext(conn, entity, credentials.company_id, mapping,
                                                                  company_keys=keys))
