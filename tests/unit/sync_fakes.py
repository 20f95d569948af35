"""In-memory stand-ins behind the project's own interfaces (``sync.ports``, ``state.ports``): the unit
tests of the poller and the writer run on these, with no moto and no HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from ml_connector.config import ConnectionConfig, RuntimeSettings
from ml_connector.deadline import Deadline
from ml_connector.marketo.errors import MarketoQuotaExceeded
from ml_connector.marketo.models import SyncResult
from ml_connector.state import State
from ml_connector.sync.mapping import EntityMapping, load_mapping
from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.outbox import pack_bodies
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink
from ml_connector.sync.writer import InboundMessage, Writer, WriteReport
from ml_connector.visma.models import VismaPage

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CONNECTION = ConnectionConfig.model_validate({
    "id": "c1", "visma": {"secret_id": "v", "page_size": 3},
    "marketo": {"secret_id": "m", "munchkin_id": "123-ABC-456"}})
SETTINGS = RuntimeSettings(state_table="t", connections=(CONNECTION,), safety_margin_seconds=5)


def customer_mapping() -> EntityMapping:
    section = load_mapping(None).customer
    assert section is not None
    return section


def visma_stamp(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def customer(internal_id: int, name: str, modified: datetime, **extra: Any) -> dict[str, Any]:
    return {"internalId": internal_id, "number": f"C{internal_id}", "name": name, "status": "Active",
            "lastModifiedDateTime": visma_stamp(modified), "timeStamp": f"ts-{internal_id}-{visma_stamp(modified)}",
            **extra}


class FakeVisma:
    """Customers served in ``lastModifiedDateTime`` order, ``>= since``, a page at a time; ``between_pages``
    runs after each page is served (to change the data while a poll pages, as Visma users do)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = {r["internalId"]: r for r in records}
        self.calls = 0
        self.between_pages: Callable[[int], None] | None = None
        self.since_asked: list[datetime | None] = []

    def put(self, record: dict[str, Any]) -> None:
        self.records[record["internalId"]] = record

    def iter_pages(self, entity: str, *, modified_since: datetime | None = None, page_size: int = 1000,
                   condition: str = ">=", params: dict[str, Any] | None = None,
                   first_page: int = 1) -> Iterator[VismaPage]:
        self.since_asked.append(modified_since)
        number = first_page
        while True:
            window = self._window(modified_since)
            page = window[(number - 1) * page_size : number * page_size]
            self.calls += 1
            if not page:
                return
            yield VismaPage(page_number=number, total_count=len(window), max_page_size=None, records=page)
            if self.between_pages is not None:
                self.between_pages(number)
            if number * page_size >= len(window):
                return
            number += 1

    def records_of(self, path: str) -> list[dict[str, Any]]:
        return []

    def records(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000
                ) -> Iterator[dict[str, Any]]:
        yield from self.records_of(path)

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        self.calls += 1
        internal = next(r for r in self.records.values() if path.endswith(f"/{r['number']}"))
        return internal

    def _window(self, since: datetime | None) -> list[dict[str, Any]]:
        rows = [r for r in self.records.values()
                if since is None or r["lastModifiedDateTime"] >= visma_stamp(since)]
        return sorted(rows, key=lambda r: (r["lastModifiedDateTime"], r["internalId"]))


class FakeOutbox:
    def __init__(self) -> None:
        self.sent: list[SyncMessage] = []
        self.sends: list[list[SyncMessage]] = []  # per send call, as the real outbox packs them

    def send(self, messages: Sequence[SyncMessage]) -> int:
        if any(len(m.model_dump_json().encode()) > 262_144 for m in messages):
            raise RuntimeError("SQS: message longer than the queue's 262144-byte maximum")  # what SQS does
        self.sent.extend(messages)
        self.sends.append(list(messages))
        return len(messages)

    def send_records(self, records: Sequence[str]) -> int:
        """Records as the poller's sink holds them (``message_body``), kept as the messages they carry."""
        return self.send([SyncMessage.model_validate_json(record) for record in records])

    def inbound(self) -> list[InboundMessage]:
        """Everything sent so far, one record a message (as earlier versions sent; the writer still reads it)."""
        return [InboundMessage(f"m{i}", m.model_dump_json()) for i, m in enumerate(self.sent)]

    def packed(self, prefix: str = "p") -> list[InboundMessage]:
        """Everything sent so far as the real outbox sends it: packs, cut per send call."""
        bodies = [body for messages in self.sends for body in pack_bodies(messages)]
        return [InboundMessage(f"{prefix}{i}", body) for i, body in enumerate(bodies)]


class FakeMarketo:
    """Companies by dedupe key; ``refuse`` maps a key to Marketo's skip reason; ``quota_after`` makes the
    call after that many answer 607."""

    munchkin_id = "123-ABC-456"

    def __init__(self) -> None:
        self.companies: dict[str, dict[str, Any]] = {}
        self.calls: list[int] = []  # records per call
        self.refuse: dict[str, str] = {}
        self.quota_after: int | None = None
        # Hooks around applying a call's records (a slow call is one whose hook waits).
        self.before_apply: Callable[[list[dict[str, Any]]], None] = lambda _records: None
        self.after_apply: Callable[[list[dict[str, Any]]], None] = lambda _records: None

    def sync_records(self, target: str, records: list[dict[str, Any]], dedupe_field: str) -> list[SyncResult]:
        if self.quota_after is not None and len(self.calls) >= self.quota_after:
            raise MarketoQuotaExceeded("607", "Daily quota reached")
        self.calls.append(len(records))
        self.before_apply(records)
        results = self._apply(records, dedupe_field)
        self.after_apply(records)
        return results

    def _apply(self, records: list[dict[str, Any]], dedupe_field: str) -> list[SyncResult]:
        results = []
        for seq, record in enumerate(records):
            key = record[dedupe_field]
            if key in self.refuse:
                results.append(SyncResult.model_validate(
                    {"seq": seq, "status": "skipped", "reasons": [{"code": "1003", "message": self.refuse[key]}]}))
                continue
            status = "updated" if key in self.companies else "created"
            self.companies[key] = dict(record)
            results.append(SyncResult(seq=seq, status=status, id=len(self.companies)))
        return results


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def poll_into(state: State, visma: FakeVisma) -> tuple[EntityPollReport, FakeOutbox]:
    """One customer poll of the fake Visma into a fresh fake queue."""
    outbox = FakeOutbox()
    report = Poller(state, QueueSink(state, outbox), clock=lambda: NOW).poll_entity(
        CONNECTION, visma, "customer", company_id="1", mapping=customer_mapping())
    return report, outbox


def write(state: State, marketo: FakeMarketo, inbound: list[InboundMessage],
          deadline: Deadline | None = None) -> WriteReport:
    writer = Writer(SETTINGS, state, lambda _c: marketo, **({"deadline": deadline} if deadline else {}))
    return writer.process(inbound)


def queued(state: State, visma: FakeVisma) -> list[InboundMessage]:
    """What one poll puts in the queue, as the writer receives it."""
    return poll_into(state, visma)[1].inbound()
