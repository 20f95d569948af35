"""Send a failed or deferred job's messages to the queue again; the writer's guards make it safe to repeat."""

from __future__ import annotations

from datetime import UTC, datetime

from ml_connector.queues import OperationError, SyncQueues
from ml_connector.runtime import Runtime
from ml_connector.state import JobRecord, utc_iso
from ml_connector.sync.messages import unpack_messages
from ml_connector.sync.outbox import SqsOutbox


def find_job(runtime: Runtime, job_id: str) -> JobRecord:
    for conn in runtime.connections():
        job = runtime.state.jobs.get(conn.id, job_id)
        if job is not None:
            return job
    raise OperationError(f"no job {job_id} (jobs are kept {runtime.settings.job_ttl_days} days)")


def replay_job(runtime: Runtime, queues: SyncQueues, job_id: str) -> int:
    job = find_job(runtime, job_id)
    if not job.messages:
        raise OperationError(f"job {job_id} is {job.status}; only failed or deferred jobs keep their messages")
    messages = unpack_messages(job.messages)
    SqsOutbox(queues.url, client=queues.sqs).send(messages)
    runtime.state.jobs.put(job.model_copy(update={"status": f"replayed ({job.status})",
                                                  "at": utc_iso(datetime.now(UTC))}))
    return len(messages)
