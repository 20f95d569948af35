"""What the sync logic needs of Visma, Marketo and the queue: the clients implement these, and unit
tests put in-memory fakes behind them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

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
                   condition: str = ">=", params: dict[str, Any] | None = None) -> Iterator[VismaPage]: ...

    def records(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000
                ) -> Iterator[dict[str, Any]]: ...

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any: ...


class Outbox(Protocol):
    """The sync queue, as the poller and the requeue of deferred chunks send to it."""

    def send(self, messages: Sequence[SyncMessage]) -> int: ...


class MarketoWriter(Protocol):
    munchkin_id: str

    def sync_records(self, target: str, records: list[dict[str, Any]], dedupe_field: str) -> list[SyncResult]: ...
