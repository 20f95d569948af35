"""The last poll cycles per connection: when, how long, what was read and sent, and errors."""

from __future__ import annotations

from ml_connector.runtime import Runtime
from ml_connector.state import RunRecord


def list_runs(runtime: Runtime, *, last: int = 10, connection: str | None = None) -> list[RunRecord]:
    """Newest first, up to ``last`` per connection."""
    return [run for conn in runtime.connections([connection] if connection else None)
            for run in runtime.state.runs.recent(conn.id, last)]
