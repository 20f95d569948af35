"""What the sync logic needs of Visma, Marketo and the queue: the clients implement these, and unit
tests put in-memory fakes behind them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

from ml_connector.config import ConnectionConfig, VismaEntity
from ml_connector.marketo.models import SyncResult
from ml_connector.sync.messages import SyncMessage
from ml_connector.visma.models import VismaPage


class Delivery(NamedTuple):
    """What a sink did with a page's messages."""

    sent: int
    skipped: int  # already delivered earlier
    refused: frozenset[int] = frozenset()  # internalIds quarantined instead (a message SQS cannot carry)


class VismaReader(Protocol):
    calls: int

    def iter_pages(self, entity: str, *, modified_since: datetime | None = None, page_size: int = 1000,
                   condition: str = ">=", params: dict[str, Any] | None = None,
                   first_page: int = 1) -> Iterator[VismaPage]: ...

    def records(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000
                ) -> Iterator[dict[str, Any]]: ...

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any: ...


class Outbox(Protocol):
    """The sync queue, as the poller and the requeue of deferred chunks send to it."""

    def send(self, messages: Sequence[SyncMessage]) -> int: ...


class RecordOutbox(Outbox, Protocol):
    """The sync queue as the poller's sink sends to it: records already serialised, as it holds them."""

    def send_records(self, records: Sequence[str]) -> int: ...


class MarketoWriter(Protocol):
    munchkin_id: str

    def sync_records(self, target: str, records: list[dict[str, Any]], dedupe_field: str) -> list[SyncResult]: ...


class MarketoRecords(Protocol):
    """What a reconcile needs of Marketo: read records back by key, delete them."""

    def get_records(self, target: str, filter_type: str, values: list[str], fields: list[str]
                    ) -> list[dict[str, Any]]: ...

    def delete_records(self, target: str, dedupe_field: str, keys: list[str]) -> list[SyncResult]: ...

    def delete_leads(self, ids: list[int]) -> list[SyncResult]: ...


class FullReadObserver(Protocol):
    """Reconcile's view of the poller: when to read a connection's entity in full, and what a full read found."""

    def full_read_due(self, connection: ConnectionConfig, entity: VismaEntity, now: datetime) -> bool:
        """Asked when a new window starts (never when one continues): True makes it a full read (everything)."""

    def drifted(self, connection: ConnectionConfig, entity: VismaEntity,
                messages: Sequence[SyncMessage]) -> set[int]:
        """During a full read, per page: internalIds to send although Marketo holds their content hash."""

    def full_read_complete(self, connection: ConnectionConfig, entity: VismaEntity,
                           seen_ids: Iterable[int], started: datetime) -> dict[str, int]:
        """Once, when a full read's window completes (not in dry-run), after the watermark advanced: every
        internalId the window saw. Returns counts for the poll's report."""
