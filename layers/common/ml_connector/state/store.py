"""DynamoDB access for sync state: watermarks, per-record versions, jobs and the quarantine.

One table, key ``pk`` (hash) + ``sk`` (range):

=============================  ==================  =============================================
pk                             sk                  holds
=============================  ==================  =============================================
``WM#{connection}``            ``{entity}``        watermark (UTC ISO), last cycle summary
``POLL#{connection}#{entity}`` ``{internalId}``    row version last enqueued by the poller
``REC#{connection}#{entity}``  ``{internalId}``    version and content hash last written to Marketo
``JOB#{connection}``           ``{jobId}``         chunk outcome (TTL ``expiresAt``)
``QUAR#{connection}``          ``{entity}#{ref}``  quarantined record: reason, raw payload
``PAY#{connection}``           ``{customer number}`` payment facts (only customers with a non-zero fact)
``REF#{connection}``           ``{reference key}`` content hash of reference data last written
``LIMIT#{munchkin}``           ``RATE``/``LEASE#n`` shared Marketo call budget (marketo.shared_limiter)
=============================  ==================  =============================================
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
from boto3.dynamodb.conditions import Key
from pydantic import BaseModel

BATCH_GET_LIMIT = 100
MAX_UNPROCESSED_RETRIES = 8
PARALLEL_WRITES = 16  # conditional record writes in flight at once (a chunk has up to 300)


def utc_iso(value: datetime) -> str:
    """Fixed-width UTC ISO string, so string order equals time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class RecordState(BaseModel):
    internal_id: int
    written_modified_at: str | None = None
    written_version: str | None = None  # messages.version_key: what the version guard compares
    written_ts: str | None = None
    written_hash: str | None = None
    written_key: str | None = None  # the Marketo key written (a lead's e-mail can change)
    marketo_id: str | None = None


class JobRecord(BaseModel):
    job_id: str
    connection: str
    marketo_object: str
    status: str
    records: int
    created: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = None
    message_ids: list[str] = []
    at: str
    # The chunk's messages (zlib + base64), kept for failed jobs so an operator can replay them.
    messages: str | None = None
    # Deferred jobs (Marketo daily quota): when the poller sends them to the queue again.
    retry_after: str | None = None


class QuarantineEntry(BaseModel):
    connection: str
    entity: str
    ref: str
    stage: str
    reason: str
    raw: str
    at: str
    # The record version Marketo refused (writer stage); a later written version resolves the entry.
    version: str | None = None


class WrittenRecord(BaseModel):
    """What Marketo accepted for one record: the version the writer's guard compares next time."""

    entity: str
    internal_id: int
    modified_at: datetime
    visma_ts: str
    version: str
    content_hash: str
    key: str | None = None
    marketo_id: str | None = None


class QuarantineMark(BaseModel):
    stage: str
    version: str | None = None


class StateStore:
    def __init__(self, table_name: str, *, resource: Any | None = None, job_ttl_days: int = 14) -> None:
        self._resource = resource or boto3.resource("dynamodb")
        self._table = self._resource.Table(table_name)
        self.table_name = table_name
        self._job_ttl = job_ttl_days * 86_400

    @property
    def table(self) -> Any:
        """The boto3 Table, for components that keep their own items here (the shared Marketo limiter)."""
        return self._table

    # -- watermarks -------------------------------------------------------------------------
    def get_watermark(self, connection: str, entity: str) -> datetime | None:
        item = self._table.get_item(Key={"pk": f"WM#{connection}", "sk": entity}, ConsistentRead=True).get("Item")
        return parse_utc_iso(item["watermark"]) if item and item.get("watermark") else None

    def set_watermark(self, connection: str, entity: str, watermark: datetime, summary: dict[str, Any]) -> None:
        """Move the watermark forward only: a late or repeated poll never moves it back."""
        value = utc_iso(watermark)
        try:
            self._table.put_item(
                Item={"pk": f"WM#{connection}", "sk": entity, "watermark": value,
                      "lastCycle": json.dumps(summary, default=str), "updatedAt": utc_iso(datetime.now(UTC))},
                ConditionExpression="attribute_not_exists(watermark) OR watermark <= :w",
                ExpressionAttributeValues={":w": value},
            )
        except self._resource.meta.client.exceptions.ConditionalCheckFailedException:
            pass

    def watermarks(self, connection: str) -> dict[str, dict[str, Any]]:
        items = self._query(Key("pk").eq(f"WM#{connection}"))
        return {i["sk"]: i for i in items}

    # -- per-record state -------------------------------------------------------------------
    def get_enqueued(self, connection: str, entity: str, internal_ids: Iterable[int]) -> dict[int, str]:
        """Row versions (Visma ``timeStamp``) the poller already enqueued, by internalId."""
        items = self._get_many(f"POLL#{connection}#{entity}", internal_ids)
        return {int(i["sk"]): i["ts"] for i in items}

    def mark_enqueued(self, connection: str, entity: str, versions: Sequence[tuple[int, str]]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for internal_id, ts in versions:
                batch.put_item(Item={"pk": f"POLL#{connection}#{entity}", "sk": str(internal_id), "ts": ts})

    def get_records(self, connection: str, entity: str, internal_ids: Iterable[int]) -> dict[int, RecordState]:
        states = (_record_state(i) for i in self._get_many(f"REC#{connection}#{entity}", internal_ids))
        return {s.internal_id: s for s in states}

    def mark_written(self, connection: str, records: Sequence[WrittenRecord]) -> list[bool]:
        """Record what Marketo now holds, each unless a newer version was written meanwhile (False then).
        The conditional writes run in parallel: one after another they would cost a chunk of 300 records
        over a second of DynamoDB round trips."""
        if len(records) <= 1:
            return [self._mark_written(connection, r) for r in records]
        with ThreadPoolExecutor(max_workers=min(PARALLEL_WRITES, len(records))) as pool:
            return list(pool.map(lambda r: self._mark_written(connection, r), records))

    def _mark_written(self, connection: str, record: WrittenRecord) -> bool:
        # The resource's client: thread-safe (unlike the resource), and it still takes plain Python values.
        client = self._resource.meta.client
        try:
            client.update_item(
                TableName=self.table_name,
                Key={"pk": f"REC#{connection}#{record.entity}", "sk": str(record.internal_id)},
                UpdateExpression="SET writtenModifiedAt = :m, writtenVersion = :v, writtenTs = :t, "
                                 "writtenHash = :h, marketoId = :id, writtenKey = :k",
                ConditionExpression="attribute_not_exists(writtenVersion) OR writtenVersion <= :v",
                ExpressionAttributeValues={
                    ":m": utc_iso(record.modified_at), ":v": record.version, ":t": record.visma_ts,
                    ":h": record.content_hash, ":id": record.marketo_id, ":k": record.key},
            )
            return True
        except client.exceptions.ConditionalCheckFailedException:
            return False

    # -- jobs -------------------------------------------------------------------------------
    def put_job(self, job: JobRecord) -> None:
        item = {"pk": f"JOB#{job.connection}", "sk": job.job_id, **job.model_dump(),
                "expiresAt": int(time.time()) + self._job_ttl}
        self._table.put_item(Item=item)

    def get_job(self, connection: str, job_id: str) -> JobRecord | None:
        item = self._table.get_item(Key={"pk": f"JOB#{connection}", "sk": job_id}).get("Item")
        return JobRecord.model_validate(_plain(item)) if item else None

    def jobs(self, connection: str) -> list[JobRecord]:
        return [JobRecord.model_validate(_plain(i)) for i in self._query(Key("pk").eq(f"JOB#{connection}"))]

    # -- quarantine -------------------------------------------------------------------------
    def quarantine(self, entry: QuarantineEntry) -> None:
        self._table.put_item(Item={"pk": f"QUAR#{entry.connection}", "sk": f"{entry.entity}#{entry.ref}",
                                   **entry.model_dump()})

    def quarantined(self, connection: str) -> list[QuarantineEntry]:
        return [QuarantineEntry.model_validate(_plain(i)) for i in self._query(Key("pk").eq(f"QUAR#{connection}"))]

    def quarantine_marks(self, connection: str, keys: Iterable[str]) -> dict[str, QuarantineMark]:
        """The quarantine entries (``entity#ref``) among ``keys``, read by key without their payloads."""
        items = self._get_many(f"QUAR#{connection}", keys, projection=("sk", "stage", "version"))
        return {i["sk"]: QuarantineMark(stage=i.get("stage", ""), version=i.get("version")) for i in items}

    def quarantine_index(self, connection: str) -> dict[str, QuarantineMark]:
        """Every quarantined record of a connection by ``entity#ref``, without the stored payloads."""
        items = self._query(Key("pk").eq(f"QUAR#{connection}"), projection=("sk", "stage", "version"))
        return {i["sk"]: QuarantineMark(stage=i.get("stage", ""), version=i.get("version")) for i in items}

    def release(self, connection: str, entity: str, ref: str) -> None:
        self._table.delete_item(Key={"pk": f"QUAR#{connection}", "sk": f"{entity}#{ref}"})

    # -- Marketo daily quota --------------------------------------------------------------------
    def block_marketo(self, munchkin_id: str, until: datetime) -> None:
        """No writer calls this instance before ``until`` (its daily quota is used up)."""
        self._table.put_item(Item={"pk": f"LIMIT#{munchkin_id}", "sk": "QUOTA", "until": utc_iso(until)})

    def marketo_blocked_until(self, munchkin_id: str) -> datetime | None:
        item = self._table.get_item(Key={"pk": f"LIMIT#{munchkin_id}", "sk": "QUOTA"}).get("Item")
        until = parse_utc_iso(item["until"]) if item else None
        return until if until and until > datetime.now(UTC) else None

    def deferred_jobs(self, connection: str) -> list[JobRecord]:
        return [j for j in self.jobs(connection) if j.status == "deferred"]

    # -- reference data ------------------------------------------------------------------------
    def reference_hashes(self, connection: str) -> dict[str, str]:
        return {i["sk"]: i["hash"] for i in self._query(Key("pk").eq(f"REF#{connection}"))}

    def put_reference_hashes(self, connection: str, hashes: dict[str, str]) -> None:
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for key, value in hashes.items():
                batch.put_item(Item={"pk": f"REF#{connection}", "sk": key, "hash": value})

    # -- payment facts ------------------------------------------------------------------------
    def payment_facts(self, connection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Stored payment facts by customer number, streamed (customers with only zero facts have no item)."""
        for item in self._query(Key("pk").eq(f"PAY#{connection}")):
            yield item["sk"], {k: float(v) if isinstance(v, Decimal) else v for k, v in item.items()
                               if k not in ("pk", "sk")}

    def put_payment_facts(self, connection: str, facts: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Store changed facts; an all-zero entry removes the customer's item."""
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for number, values in facts:
                key = {"pk": f"PAY#{connection}", "sk": number}
                if any(values.values()):
                    batch.put_item(Item={**key, **{k: Decimal(str(v)) for k, v in values.items()}})
                else:
                    batch.delete_item(Key=key)

    # -- helpers ----------------------------------------------------------------------------
    def _query(self, condition: Any, projection: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"KeyConditionExpression": condition}
        if projection:
            names = {f"#p{i}": name for i, name in enumerate(projection)}
            kwargs.update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
        while True:
            page = self._table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def remember_numbers(self, connection: str, entity: str, pairs: Sequence[tuple[str, int]]) -> None:
        """Number -> internalId of records the poller sent: contacts name their customer by number."""
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for number, internal_id in pairs:
                batch.put_item(Item={"pk": f"NUM#{connection}#{entity}", "sk": number, "id": internal_id})

    def internal_ids(self, connection: str, entity: str, numbers: Iterable[str]) -> dict[str, int]:
        items = self._get_many(f"NUM#{connection}#{entity}", numbers)
        return {i["sk"]: int(i["id"]) for i in items}

    def _get_many(self, pk: str, internal_ids: Iterable[int | str], projection: Sequence[str] = ()
                  ) -> list[dict[str, Any]]:
        ids = list(dict.fromkeys(internal_ids))
        items: list[dict[str, Any]] = []
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            keys = [{"pk": pk, "sk": str(i)} for i in ids[start : start + BATCH_GET_LIMIT]]
            items.extend(self._batch_get(keys, projection))
        return items

    def _batch_get(self, keys: list[dict[str, str]], projection: Sequence[str] = ()) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        spec: dict[str, Any] = {"Keys": keys, "ConsistentRead": True}
        if projection:
            names = {f"#p{i}": name for i, name in enumerate(projection)}
            spec.update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
        request = {self.table_name: spec}
        for attempt in range(MAX_UNPROCESSED_RETRIES):
            response = self._resource.batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.table_name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise RuntimeError("DynamoDB left keys unprocessed after retries")


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB returns numbers as Decimal; models want ints."""
    return {k: (int(v) if type(v).__name__ == "Decimal" else v) for k, v in item.items()}


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
