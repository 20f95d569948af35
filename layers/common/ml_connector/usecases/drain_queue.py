"""Feed the sync queue to the writer in batches until it is empty, as the SQS event source does
(the CLI's ``sync --once`` against a local stack)."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel

from ml_connector.deadline import NO_DEADLINE
from ml_connector.queues import SyncQueues
from ml_connector.runtime import Runtime
from ml_connector.sync.writer import InboundMessage
from ml_connector.usecases.write_batch import write_batch


class DrainSummary(BaseModel):
    batches: int = 0
    messages: int = 0  # SQS messages, each a pack of records
    failed: int = 0  # messages back in the queue (they hold records of a chunk that failed)
    created: int = 0
    updated: int = 0
    skipped: int = 0
    unchanged: int = 0


def drain_queue(runtime: Runtime, queues: SyncQueues, *, batch_size: int = 20, visibility_timeout: int = 120,
                on_batch: Callable[[int], None] | None = None) -> DrainSummary:
    """``on_batch(messages)`` reports progress. ``batch_size`` is in messages, each a pack of up to 300 records
    (the template's default ``WriterBatchSize``)."""
    summary = DrainSummary()
    while True:
        batch = queues.receive(batch_size, visibility_timeout)
        if not batch:
            return summary
        report = write_batch(runtime, [InboundMessage(m["MessageId"], m["Body"]) for m in batch], NO_DEADLINE)
        summary.batches += 1
        summary.messages += len(batch)
        for name in ("created", "updated", "skipped", "unchanged"):
            setattr(summary, name, getattr(summary, name) + getattr(report, name))
        done = [m for m in batch if m["MessageId"] not in report.failed_message_ids]
        queues.delete(done)
        summary.failed += len(batch) - len(done)
        if on_batch is not None:
            on_batch(len(batch))
        if not done:
            return summary  # nothing moved: leave the rest to the queue's own retries and DLQ
