from __future__ import annotations

import time

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable, plain
from ml_connector.state.models import RunRecord


class DynamoRuns:
    def __init__(self, table: StateTable, ttl_days: int) -> None:
        self._t = table
        self._ttl = ttl_days * 86_400

    def record(self, run: RunRecord) -> None:
        # One put of well under 1 KB per connection per cycle: the connection and start are the key.
        item = {**keys.key(keys.runs(run.connection), run.started),
                **run.model_dump(exclude={"connection", "started"}, exclude_none=True),
                "expiresAt": int(time.time()) + self._ttl}
        self._t.put(item)

    def recent(self, connection: str, limit: int) -> list[RunRecord]:
        return [_run(connection, i) for i in self._t.newest(keys.runs(connection), limit)]


def _run(connection: str, item: dict[str, object]) -> RunRecord:
    values = {k: v for k, v in plain(item).items() if k not in ("pk", "sk", "expiresAt")}
    return RunRecord.model_validate({**values, "connection": connection, "started": item["sk"]})
