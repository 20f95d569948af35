"""Move messages from the dead-letter queue back to the sync queue, with SQS's own message-move task.

SQS moves them server-side (no message passes through the operator's machine, and the task survives the
CLI exiting); ``redrive_progress`` reports the task. moto, the local emulator, has no message-move tasks
(5.2: "not implemented"), so against it the messages are received and sent back here instead.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from ml_connector.queues import SyncQueues

NATIVE, EMULATED = "SQS message-move task", "receive and send (local emulator)"


class MoveTask(BaseModel):
    status: str  # SQS's: RUNNING, COMPLETED, CANCELLING, CANCELLED, FAILED
    moved: int
    to_move: int | None = None
    started: str | None = None
    failure: str | None = None
    method: str = NATIVE


def redrive_dead_letters(queues: SyncQueues, *, rate: int | None = None) -> MoveTask:
    """Start moving every dead letter back; ``rate`` caps messages per second (SQS's default: as fast as it can)."""
    dlq = queues.dead_letter_url()
    if queues.emulated:
        return _move_here(queues, dlq)
    task = {"SourceArn": queues.arn(dlq), "DestinationArn": queues.arn()}
    if rate:
        task["MaxNumberOfMessagesPerSecond"] = rate  # type: ignore[assignment]
    queues.sqs.start_message_move_task(**task)
    return redrive_progress(queues, dlq)[0]


def redrive_progress(queues: SyncQueues, dlq: str | None = None) -> list[MoveTask]:
    """The recent move tasks from the dead-letter queue, newest first (SQS keeps the last ten)."""
    if queues.emulated:
        return []
    source = queues.arn(dlq or queues.dead_letter_url())
    results = queues.sqs.list_message_move_tasks(SourceArn=source, MaxResults=10).get("Results", [])
    return [MoveTask(status=r["Status"], moved=r.get("ApproximateNumberOfMessagesMoved", 0),
                     to_move=r.get("ApproximateNumberOfMessagesToMove"),
                     started=_iso(r.get("StartedTimestamp")), failure=r.get("FailureReason")) for r in results]


def _move_here(queues: SyncQueues, dlq: str) -> MoveTask:
    started, moved = _iso(int(datetime.now(UTC).timestamp() * 1000)), 0
    while batch := queues.receive(10, 60, url=dlq):
        entries = [{"Id": str(i), "MessageBody": m["Body"]} for i, m in enumerate(batch)]
        sent = queues.sqs.send_message_batch(QueueUrl=queues.url, Entries=entries)
        ok = {e["Id"] for e in sent.get("Successful", [])}
        done = [m for i, m in enumerate(batch) if str(i) in ok]
        queues.delete(done, dlq)
        moved += len(done)
        if not done:
            return MoveTask(status="FAILED", moved=moved, started=started, method=EMULATED,
                            failure="the sync queue refused the messages")
    return MoveTask(status="COMPLETED", moved=moved, to_move=moved, started=started, method=EMULATED)


def _iso(millis: int | None) -> str | None:
    return datetime.fromtimestamp(millis / 1000, UTC).isoformat(timespec="seconds") if millis else None
