"""Sends sync messages to SQS, ten per SendMessageBatch call, retrying entries SQS refuses."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import boto3

from ml_connector.sync.batching import chunked
from ml_connector.sync.messages import SyncMessage

SQS_BATCH_LIMIT = 10
MAX_ATTEMPTS = 5


class EnqueueError(RuntimeError):
    """Some messages could not be enqueued; the poller must not advance its watermark."""


class SqsOutbox:
    def __init__(self, queue_url: str, *, client: Any | None = None) -> None:
        self.queue_url = queue_url
        self._sqs = client or boto3.client("sqs")
        self.calls = 0

    def send(self, messages: Sequence[SyncMessage]) -> int:
        for batch in chunked(messages, SQS_BATCH_LIMIT):
            self._send_batch(batch)
        return len(messages)

    def _send_batch(self, batch: list[SyncMessage]) -> None:
        pending = {str(i): m for i, m in enumerate(batch)}
        for attempt in range(MAX_ATTEMPTS):
            entries = [{"Id": i, "MessageBody": m.model_dump_json()} for i, m in pending.items()]
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
