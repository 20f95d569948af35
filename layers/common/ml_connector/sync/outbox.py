"""Sends sync messages to SQS in packs, retrying entries SQS refuses.

Records travel as packs (``messages.smallest_pack_body``, deflated when that is smaller): up to 300 records a
message, so a full message is a full Marketo call, and SQS bills (and the writer receives) one message where it
was 300. A SendMessageBatch call carries at most ten messages and 256 KiB in all, and each message is at most
256 KiB (the queue's default ``MaximumMessageSize``): packs and batches are cut by both limits, measured on the
bytes sent."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import boto3

from ml_connector.sync.messages import MAX_RECORDS_PER_PACK, PACK_OVERHEAD_BYTES, SyncMessage, smallest_pack_body

SQS_BATCH_LIMIT = 10
SQS_MAX_BYTES = 262_144  # one message, and the sum of one batch's messages
MAX_ATTEMPTS = 5


class EnqueueError(RuntimeError):
    """Some messages could not be enqueued; the poller must not advance its watermark."""


class SqsOutbox:
    def __init__(self, queue_url: str, *, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = client or boto3.client("sqs")
        self.calls = 0

    def send(self, messages: Sequence[SyncMessage]) -> int:
        """Send the records packed; returns how many records were sent."""
        oversize = [m.record_ref for m in messages if not fits_in_sqs(m)]
        if oversize:
            raise EnqueueError(f"message over SQS's {SQS_MAX_BYTES}-byte limit: {', '.join(oversize[:5])}")
        self.send_bodies(pack_bodies(messages))
        return len(messages)

    def send_records(self, records: Sequence[str]) -> int:
        """Records already serialised (``message_body``) and known to fit (``body_fits``), packed as ``send``
        packs them; returns how many were sent."""
        self.send_bodies(pack_records(records))
        return len(records)

    def send_bodies(self, bodies: Sequence[str]) -> int:
        """Message bodies already known to fit, in as few batch calls as SQS's limits allow."""
        for batch in _batches(bodies):
            self._send_batch(batch)
        return len(bodies)

    def _send_batch(self, batch: list[str]) -> None:
        pending = {str(i): body for i, body in enumerate(batch)}
        for attempt in range(MAX_ATTEMPTS):
            entries = [{"Id": i, "MessageBody": body} for i, body in pending.items()]
            self.calls += 1
            response = self._sqs.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            failed = response.get("Failed", [])
            if not failed:
                return
            permanent = [f for f in failed if f.get("SenderFault")]
            if permanent:
                raise EnqueueError(f"SQS refused {len(permanent)} message(s): {permanent[0].get('Message')}")
            pending = {f["Id"]: pending[f["Id"]] for f in failed}
            time.sleep(min(0.1 * 2**attempt, 2.0))
        raise EnqueueError(f"SQS kept failing {len(pending)} message(s) after {MAX_ATTEMPTS} attempts")


def message_body(message: SyncMessage) -> str:
    """What is sent for a message (and so what its size is measured on)."""
    return message.model_dump_json()


def fits_in_sqs(message: SyncMessage) -> bool:
    """Whether the record fits in a message (a pack of its own)."""
    return body_fits(message_body(message))


def body_fits(record: str) -> bool:
    """Whether a record's ``message_body`` fits in a message (a pack of its own)."""
    return PACK_OVERHEAD_BYTES + _size(record) <= SQS_MAX_BYTES


def pack_bodies(messages: Sequence[SyncMessage], *, max_records: int = MAX_RECORDS_PER_PACK,
                max_bytes: int = SQS_MAX_BYTES) -> list[str]:
    """The records in order, as few pack bodies as the record and byte limits allow (each record fits)."""
    return pack_records([message_body(m) for m in messages], max_records=max_records, max_bytes=max_bytes)


def pack_records(records: Sequence[str], *, max_records: int = MAX_RECORDS_PER_PACK,
                 max_bytes: int = SQS_MAX_BYTES) -> list[str]:
    """``pack_bodies`` of records already serialised (``message_body``)."""
    records = list(records)
    bodies: list[str] = []
    while records:
        count, body = _largest_pack(records[:max_records], max_bytes)
        bodies.append(body)
        records = records[count:]
    return bodies


def _largest_pack(records: list[str], max_bytes: int) -> tuple[int, str]:
    """The longest leading run of ``records`` whose pack fits, and that pack. Deflated sizes do not add up
    record by record, so an over-size run is bisected; one record always fits (``fits_in_sqs``)."""
    body = smallest_pack_body(records)
    if _size(body) <= max_bytes:
        return len(records), body
    fits, fitting, over = 1, smallest_pack_body(records[:1]), len(records)
    while over - fits > 1:
        middle = (fits + over) // 2
        candidate = smallest_pack_body(records[:middle])
        if _size(candidate) <= max_bytes:
            fits, fitting = middle, candidate
        else:
            over = middle
    return fits, fitting


def _size(body: str) -> int:
    return len(body.encode("utf-8"))


def _batches(bodies: Sequence[str]) -> list[list[str]]:
    batches: list[list[str]] = []
    size = 0
    for item in bodies:
        length = _size(item)
        if not batches or len(batches[-1]) >= SQS_BATCH_LIMIT or size + length > SQS_MAX_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += length
    return batches
