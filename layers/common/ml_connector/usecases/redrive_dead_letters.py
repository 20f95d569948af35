"""Move messages from the dead-letter queue back to the sync queue."""

from __future__ import annotations

from ml_connector.queues import SyncQueues


def redrive_dead_letters(queues: SyncQueues, *, limit: int | None = None) -> int:
    dlq, moved = queues.dead_letter_url(), 0
    while limit is None or moved < limit:
        batch = queues.receive(10, 60, url=dlq)
        if not batch:
            break
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(batch)]
        sent = queues.sqs.send_message_batch(QueueUrl=queues.url, Entries=entries)
        ok = {e["Id"] for e in sent.get("Successful", [])}
        done = [m for i, m in enumerate(batch) if str(i) in ok]
        queues.delete(done, dlq)
        moved += len(done)
        if not done:
            break
    return moved
