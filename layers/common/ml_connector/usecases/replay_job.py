"""Send a failed or deferred job's messages to the queue again; the writer's guards make it safe to repeat."""

from __future__ import annotations

from datetime import UTC, datetime

from ml_connector.queues import OperationError, SyncQueues
from ml_connector.runtime import Runtime
from ml_connector.state import JobRecord, utc_iso
from ml_connector.sync.messages import unpack_messages
from ml_connector.sync.outbox import SqsOutbox


def find_job(runtime: Runtime, job_id: str) -> list[JobRecord]:
    """Every connection's share of the job (a chunk may hold records of several connections of one account)."""
    shares = [job for conn in runtime.connections() if (job := runtime.state.jobs.get(conn.id, job_id)) is not None]
    if not shares:
        raise OperationError(f"no job {job_id} (jobs are kept {runtime.settings.job_ttl_days} days)")
    return shares


def replay_job(runtime: Runtime, queues: SyncQueues, job_id: str) -> int:
    shares = find_job(runtime, job_id)
    if not all(job.messages for job in shares):
        status = ", ".join(sorted({job.status for job in shares}))
        raise OperationError(f"job {job_id} is {status}; only failed or deferred jobs keep their messages")
    messages = [m for job in shares for m in unpack_messages(job.messages or "")]
    SqsOutbox(queues.url, client=queues.sqs).send(messages)
    now = utc_iso(datetime.now(UTC))
    for job in shares:
        runtime.state.jobs.put(job.model_copy(update={"status": f"replayed ({job.status})", "at": now}))
    return len(messages)
