"""Sends sync messages to SQS, retrying entries SQS refuses.

A SendMessageBatch call carries at most ten messages and 256 KiB in all, and each message is at most
256 KiB (the queue's default ``MaximumMessageSize``): batches are cut by both limits."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import boto3

from ml_connector.sync.messages import SyncMessage

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
        bodies = [(m, message_body(m)) for m in messages]
        oversize = [m.record_ref for m, body in bodies if len(body.encode("utf-8")) > SQS_MAX_BYTES]
        if oversize:
            raise EnqueueError(f"message over SQS's {SQS_MAX_BYTES}-byte limit: {', '.join(oversize[:5])}")
        return self.send_bodies([body for _, body in bodies])

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
    return len(message_body(message).encode("utf-8")) <= SQS_MAX_BYTES


def _batches(bodies: Sequence[str]) -> list[list[str]]:
    batches: list[list[str]] = []
    size = 0
    for item in bodies:
        length = len(item.encode("utf-8"))
        if not batches or len(batches[-1]) >= SQS_BATCH_LIMIT or size + length > SQS_MAX_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(item)
        size += length
    return batches
