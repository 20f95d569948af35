"""Reference data one way, Visma -> Marketo: customer classes, supplier classes, credit terms and payment
methods, as records of one custom object (``vismaReference_c`` by default).

Small and slow-changing, so it is read in full every ``reference_interval_minutes`` (not every poll),
and written directly by the poller in one or two calls; records whose content Marketo already holds
(same hash as last written) cost no call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from ml_connector.marketo.client import MarketoClient
from ml_connector.observability import emit, logger
from ml_connector.state import State
from ml_connector.sync.batching import chunked
from ml_connector.sync.mapping import ReferenceMapping
from ml_connector.sync.messages import content_hash
from ml_connector.sync.ports import VismaReader

# (type, path, code field, description field); every source is a list in one of Visma's two shapes.
SOURCES = (
    ("customerClass", "/v1/customer/customerClass", "id", "description"),
    ("supplierClass", "/v1/supplier/supplierClass", "id", "description"),
    ("creditTerm", "/v1/creditTerm", "termsId", "description"),
    ("paymentMethod", "/v1/paymentmethod", "paymentMethodId", "description"),
)


class ReferenceReport(BaseModel):
    connection: str
    ran: bool = False
    records_read: int = 0
    written: int = 0
    unchanged: int = 0
    skipped: int = 0
    error: str | None = None


def reference_records(client: VismaReader, company_id: str, mapping: ReferenceMapping) -> Iterator[dict[str, Any]]:
    for ref_type, path, code_field, text_field in SOURCES:
        for row in client.records(path):
            code = row.get(code_field)
            if code in (None, ""):
                continue
            key = mapping.key_template.format(company_id=company_id, type=ref_type, code=code)
            active = row.get("active")
            yield {mapping.dedupe_field: key, "refType": ref_type, "code": str(code),
                   "description": row.get(text_field), "active": True if active is None else bool(active)}


class ReferenceSync:
    def __init__(self, state: State, clock: Callable[[], datetime]) -> None:
        self._state = state
        self._clock = clock

    def due(self, connection: str, interval_minutes: int) -> bool:
        last = self._state.watermarks.get(connection, "reference")
        return last is None or self._clock() - last >= timedelta(minutes=interval_minutes)

    def run(self, connection: str, visma: VismaReader, marketo: MarketoClient, company_id: str,
            mapping: ReferenceMapping) -> ReferenceReport:
        report = ReferenceReport(connection=connection, ran=True)
        records = list(reference_records(visma, company_id, mapping))
        report.records_read = len(records)
        written = self._state.reference.get(connection)
        todo = [r for r in records if written.get(r[mapping.dedupe_field]) != content_hash(r)]
        report.unchanged = len(records) - len(todo)
        for chunk in chunked(todo, 300):
            results = marketo.sync_custom_objects(mapping.target, chunk)
            done = {}
            for result in results:
                record = chunk[result.seq]
                if result.status in ("created", "updated"):
                    done[record[mapping.dedupe_field]] = content_hash(record)
                else:
                    report.skipped += 1
                    logger.warning("Marketo skipped a reference record",
                                   extra={"key": record[mapping.dedupe_field], "reasons": result.model_dump()})
            self._state.reference.put(connection, done)
            report.written += len(done)
        self._state.watermarks.advance(connection, "reference", self._clock(), report.model_dump())
        emit("ReferenceRecordsWritten", report.written, connection=connection)
        return report
