from __future__ import annotations

import time

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable, plain
from ml_connector.state.models import JobRecord


class DynamoJobs:
    def __init__(self, table: StateTable, ttl_days: int) -> None:
        self._t = table
        self._ttl = ttl_days * 86_400

    def put(self, job: JobRecord) -> None:
        self._t.put({**keys.key(keys.jobs(job.connection), job.job_id), **job.model_dump(exclude_none=True),
                     "expiresAt": int(time.time()) + self._ttl})

    def get(self, connection: str, job_id: str) -> JobRecord | None:
        item = self._t.get(keys.jobs(connection), job_id)
        return _job(item) if item else None

    def all(self, connection: str) -> list[JobRecord]:
        return [_job(i) for i in self._t.query(keys.jobs(connection))]

    def park(self, job: JobRecord) -> None:
        self._t.put_many([{**keys.key(keys.jobs(job.connection), job.job_id), **job.model_dump(),
                           "expiresAt": int(time.time()) + self._ttl},
                          {**keys.key(keys.parked(job.connection), job.job_id), **job.model_dump()}])

    def parked(self, connection: str) -> list[JobRecord]:
        return [_job(i) for i in self._t.query(keys.parked(connection))]

    def unpark(self, connection: str, job_id: str) -> None:
        self._t.delete(keys.key(keys.parked(connection), job_id))


def _job(item: dict[str, object]) -> JobRecord:
    return JobRecord.model_validate({k: v for k, v in plain(item).items() if k not in ("pk", "sk", "expiresAt")})
