"""What the next cycle would write, per record, without writing anything or moving a watermark."""

from __future__ import annotations

from typing import Any

from ml_connector.deadline import NO_DEADLINE
from ml_connector.runtime import Runtime
from ml_connector.sync.batching import chunked
from ml_connector.sync.poller import EntityPollReport, Poller
from ml_connector.sync.preview import MarketoLookup, PreviewItem, PreviewSink
from ml_connector.usecases.poll_connection import poll_connection


def preview_changes(runtime: Runtime, only: list[str] | None = None
                    ) -> tuple[list[EntityPollReport], list[PreviewItem]]:
    items: list[PreviewItem] = []
    reports: list[EntityPollReport] = []
    for connection in runtime.connections(only):
        sink = PreviewSink(_marketo_lookup(runtime, connection.id))
        reports.extend(poll_connection(runtime, connection, Poller(runtime.state, sink, dry_run=True), NO_DEADLINE))
        items.extend(sink.items)
    return reports, items


def _marketo_lookup(runtime: Runtime, connection_id: str) -> MarketoLookup:
    def lookup(marketo_object: str, dedupe_field: str, keys: list[str], fields: list[str]
               ) -> dict[str, dict[str, Any]]:
        client = runtime.marketo_client(connection_id, NO_DEADLINE)
        found: dict[str, dict[str, Any]] = {}
        # 100 keys a query keeps each request small; the client pages through the results.
        for batch in chunked(keys, 100):
            for record in client.get_records(marketo_object, dedupe_field, batch, [dedupe_field, *fields]):
                found[str(record.get(dedupe_field))] = record
        return found

    return lookup
