"""The state the connector keeps, one small interface per concern.

The use cases and the sync logic depend on these protocols only; ``state.dynamodb`` implements them
on the one state table (its key schema is documented there, in ``keys.py``) and ``state.memory`` in
process, for unit tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from ml_connector.state.models import (
    JobRecord,
    PollRun,
    QuarantineEntry,
    QuarantineMark,
    RecordState,
    RepairEntry,
    WatermarkEntry,
    WriteRecorded,
    WrittenRecord,
)


class Watermarks(Protocol):
    def get(self, connection: str, entity: str) -> datetime | None: ...

    def advance(self, connection: str, entity: str, watermark: datetime, summary: dict[str, Any]) -> None:
        """Move forward only: a late or repeated poll never moves a watermark back."""

    def polled(self, connection: str, entity: str, started: datetime, summary: dict[str, Any]) -> None:
        """A poll that started at ``started`` read its whole window (forward only, like the watermark)."""

    def entries(self, connection: str) -> dict[str, WatermarkEntry]: ...


class EnqueuedVersions(Protocol):
    """The row version (Visma ``timeStamp`` + content) of each record the poller last enqueued."""

    def get(self, connection: str, entity: str, internal_ids: Iterable[int]) -> dict[int, str]: ...

    def mark(self, connection: str, entity: str, versions: Sequence[tuple[int, str]]) -> None: ...

    def forget(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        """The next read of these records is sent again whatever its version."""


class RecordVersions(Protocol):
    """What Marketo holds of each record, for the writer's version guard and no-op skip."""

    def get(self, connection: str, entity: str, internal_ids: Iterable[int]) -> dict[int, RecordState]: ...

    def mark_written(self, connection: str, records: Sequence[WrittenRecord]) -> list[WriteRecorded]:
        """Record each write unless a newer version was recorded meanwhile; say which writes raced another."""

    def flag_for_repair(self, connection: str, entries: Sequence[RepairEntry]) -> None:
        """Marketo may hold an older version of these: forget their content hash (so a resend is not skipped
        as unchanged) and list them for the poller to read again."""

    def repairs(self, connection: str, entity: str) -> list[RepairEntry]: ...

    def repaired(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None: ...


class Quarantine(Protocol):
    def put(self, entry: QuarantineEntry) -> None: ...

    def entries(self, connection: str) -> list[QuarantineEntry]: ...

    def marks(self, connection: str, keys: Iterable[str]) -> dict[str, QuarantineMark]:
        """The entries (``entity#ref``) among ``keys``, without payloads."""

    def index(self, connection: str) -> dict[str, QuarantineMark]:
        """Every entry of a connection by ``entity#ref``, without payloads."""

    def release(self, connection: str, entity: str, ref: str) -> None: ...


class Jobs(Protocol):
    def put(self, job: JobRecord) -> None: ...

    def get(self, connection: str, job_id: str) -> JobRecord | None: ...

    def all(self, connection: str) -> list[JobRecord]: ...


class QuotaBlock(Protocol):
    """A Marketo instance whose daily quota is used up: no writer calls it before ``until``."""

    def block(self, munchkin_id: str, until: datetime) -> None: ...

    def blocked_until(self, munchkin_id: str, now: datetime) -> datetime | None: ...


class LimiterItems(Protocol):
    """The shared Marketo call budget's items: the next free start time and the concurrency leases."""

    def next_start(self, instance: str) -> Decimal | None: ...

    def swap_next_start(self, instance: str, previous: Decimal | None, following: Decimal) -> bool:
        """Set the next free start if it is still ``previous``; False when another caller moved it first."""

    def take_lease(self, instance: str, index: int, owner: str, now: Decimal, until: Decimal) -> bool:
        """Take lease ``index`` if it is free or expired."""

    def give_back_lease(self, instance: str, index: int, owner: str) -> None:
        """Release the lease if ``owner`` still holds it."""


class PaymentFactsStore(Protocol):
    def all(self, connection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Stored facts by customer number, streamed (customers with only zero facts have none)."""

    def put(self, connection: str, facts: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Store changed facts; all-zero facts remove the customer's entry."""


class CustomerNumbers(Protocol):
    """Number -> internalId of records the poller sent: contacts name their customer by number."""

    def remember(self, connection: str, entity: str, pairs: Sequence[tuple[str, int]]) -> None: ...

    def internal_ids(self, connection: str, entity: str, numbers: Iterable[str]) -> dict[str, int]: ...


class ReferenceHashes(Protocol):
    def get(self, connection: str) -> dict[str, str]: ...

    def put(self, connection: str, hashes: dict[str, str]) -> None: ...


class PollRuns(Protocol):
    """Per connection: the lease that lets one poll run at a time, and the tick the last poll started for."""

    def start(self, connection: str, owner: str, tick: datetime, now: datetime, until: datetime) -> bool:
        """Take the lease and record ``tick``, in one conditional write, if no live lease is held and no poll has
        started for ``tick`` or a later one; False otherwise (``get`` tells which)."""

    def renew(self, connection: str, owner: str, until: datetime) -> bool:
        """Extend the lease if ``owner`` still holds it."""

    def finish(self, connection: str, owner: str, now: datetime, outcome: str) -> None:
        """Release the lease and record the outcome, if ``owner`` still holds it."""

    def get(self, connection: str) -> PollRun | None: ...

    def all(self, connections: Sequence[str]) -> dict[str, PollRun]:
        """The runs of these connections (those that ever started one), in as few reads as the store allows."""


@dataclass(frozen=True)
class State:
    """Every kind of state, each behind its own interface."""

    watermarks: Watermarks
    enqueued: EnqueuedVersions
    records: RecordVersions
    quarantine: Quarantine
    jobs: Jobs
    quota: QuotaBlock
    limiter: LimiterItems
    payments: PaymentFactsStore
    numbers: CustomerNumbers
    reference: ReferenceHashes
    runs: PollRuns
