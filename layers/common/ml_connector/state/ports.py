"""The state the connector keeps, one small interface per concern.

The use cases and the sync logic depend on these protocols only; ``state.dynamodb`` implements them
on the one state table (its key schema is documented there, in ``keys.py``) and ``state.memory`` in
process, for unit tests.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from ml_connector.state.models import (
    JobRecord,
    PollRun,
    QuarantineEntry,
    QuarantineMark,
    ReconcileStatus,
    RecordState,
    RepairEntry,
    RunRecord,
    WatermarkEntry,
    WindowCheckpoint,
    WriteRecorded,
    WrittenRecord,
)


class Watermarks(Protocol):
    def get(self, connection: str, entity: str) -> datetime | None: ...

    def advance(self, connection: str, entity: str, watermark: datetime, summary: dict[str, Any]) -> None:
        """Move forward only: a late or repeated poll never moves a watermark back."""

    def polled(self, connection: str, entity: str, started: datetime, summary: dict[str, Any]) -> None:
        """A poll that started at ``started`` read its whole window (forward only, like the watermark)."""

    def swept(self, connection: str, entity: str, at: datetime) -> None:
        """A deep sweep done at ``at`` (forward only)."""

    def entry(self, connection: str, entity: str) -> WatermarkEntry | None:
        """One entity's watermark, last complete poll and last deep sweep, in one read (eventually consistent)."""

    def complete(self, connection: str, entity: str, started: datetime, watermark: datetime | None, *,
                 swept: bool, summary: dict[str, Any]) -> None:
        """A poll that started at ``started`` read its whole window: ``advance`` to ``watermark`` (when given),
        ``polled``, and, when it read deep, the sweep done at ``started``, in one write where the store allows;
        each forward only, as on its own."""

    def entries(self, connection: str) -> dict[str, WatermarkEntry]: ...


def complete_each(watermarks: Watermarks, connection: str, entity: str, started: datetime,
                  watermark: datetime | None, *, swept: bool, summary: dict[str, Any]) -> None:
    """``Watermarks.complete`` as one write each: ``advance``, ``polled`` and ``swept``, each forward only."""
    if watermark is not None:
        watermarks.advance(connection, entity, watermark, summary)
    watermarks.polled(connection, entity, started, summary)
    if swept:
        watermarks.swept(connection, entity, started)


class RecordVersions(Protocol):
    """What Marketo holds of each record, for the writer's version guard and no-op skip."""

    def get(self, connection: str, entity: str, internal_ids: Iterable[int], *, consistent: bool = True
            ) -> dict[int, RecordState]:
        """Both the poller's and the writer's checks read eventually consistent (half price): ``mark_written``'s
        condition is the guard, not this read."""

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

    def index(self, connection: str) -> dict[str, QuarantineMark]:
        """Every entry of a connection by ``entity#ref``: stage and version only, read without the payloads."""

    def release(self, connection: str, entity: str, ref: str) -> None: ...


class Jobs(Protocol):
    def put(self, job: JobRecord) -> None: ...

    def get(self, connection: str, job_id: str) -> JobRecord | None: ...

    def all(self, connection: str) -> list[JobRecord]: ...

    def park(self, job: JobRecord) -> None:
        """Keep a chunk that waits for Marketo's quota reset, apart from the job history (so that looking
        for parked chunks reads only those, however long the history is)."""

    def parked(self, connection: str) -> list[JobRecord]: ...

    def unpark(self, connection: str, job_id: str) -> None: ...


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
        """Take lease ``index`` if it is free or expired. May refuse one given back a moment ago (the store's read
        can lag the release); the caller tries again."""

    def give_back_lease(self, instance: str, index: int, owner: str) -> None:
        """Release the lease if ``owner`` still holds it."""


class PaymentFactsStore(Protocol):
    """Payment facts by customer internalId (a customer number can change), each with the number it had. A poll
    reads the facts of the customers it needs, never all of them (they grow with every customer ever stored)."""

    def bucket(self, internal_id: int) -> int:
        """Which read brings a customer's facts: ``get`` reads the facts of a whole bucket of customers at once."""

    def overdue(self, connection: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """Stored facts of the customers with overdue invoices, streamed: the poll reads them all, to find those
        no longer overdue."""

    def get(self, connection: str, internal_ids: Iterable[int]) -> Iterator[tuple[int, dict[str, Any]]]:
        """Stored facts of every customer in the buckets of these (customers with only zero facts have none)."""

    def all(self, connection: str) -> Iterator[tuple[int, dict[str, Any]]]:
        """Every stored fact (operators and tests; no poll reads this)."""

    def put(self, connection: str, facts: Iterable[tuple[int, dict[str, Any]]],
            overdue_before: Collection[int] = ()) -> None:
        """Store changed facts; all-zero facts remove the customer's entry. ``overdue_before``: which of these had
        overdue invoices as stored (the poll knows; others are taken as not overdue before)."""


class Sweeps(Protocol):
    """When each entity's window was last read deep (the sweep for writes stamped before the overlap)."""

    def last(self, connection: str, entity: str) -> datetime | None: ...

    def done(self, connection: str, entity: str, at: datetime) -> None: ...


class CustomerNumbers(Protocol):
    """Number -> internalId of records the poller sent: contacts name their customer by number."""

    def remember(self, connection: str, entity: str, pairs: Sequence[tuple[str, int]]) -> None: ...

    def internal_ids(self, connection: str, entity: str, numbers: Iterable[str]) -> dict[str, int]: ...


class ReferenceHashes(Protocol):
    def get(self, connection: str) -> dict[str, str]: ...

    def put(self, connection: str, hashes: dict[str, str]) -> None: ...


class Runs(Protocol):
    """Poll cycles per connection (``ml-connector runs``); they expire after the job TTL."""

    def record(self, run: RunRecord) -> None: ...

    def recent(self, connection: str, limit: int) -> list[RunRecord]:
        """The newest ``limit`` runs, newest first."""


class Windows(Protocol):
    """Per connection and entity: the checkpoint of a poll window that spans invocations (at most one)."""

    def get(self, connection: str, entity: str) -> WindowCheckpoint | None: ...

    def is_open(self, connection: str, entity: str) -> bool:
        """Whether the entity has a checkpoint, without reading its id sets (a read unit, not one per 4 KB)."""

    def save(self, connection: str, entity: str, checkpoint: WindowCheckpoint) -> None:
        """Replace the entity's checkpoint with this one."""

    def delete(self, connection: str, entity: str) -> None: ...


class PollLeases(Protocol):
    """Per connection: the lease that lets one poll run at a time, and the tick the last poll started for."""

    def start(self, connection: str, owner: str, tick: datetime, now: datetime, until: datetime, *,
              resume: bool = False) -> bool:
        """Take the lease and record ``tick``, in one conditional write, if no live lease is held and no poll has
        started for ``tick`` or a later one (``resume``: for a later one; a window that continues serves the
        tick its poll started for); False otherwise (``get`` tells which)."""

    def renew(self, connection: str, owner: str, until: datetime) -> bool:
        """Extend the lease if ``owner`` still holds it."""

    def finish(self, connection: str, owner: str, now: datetime, outcome: str) -> None:
        """Release the lease and record the outcome, if ``owner`` still holds it."""

    def get(self, connection: str) -> PollRun | None: ...

    def all(self, connections: Sequence[str]) -> dict[str, PollRun]:
        """The leases of these connections (those that ever started a poll), in as few reads as the store allows."""


class Reconciles(Protocol):
    """Full reconciles per connection and entity: their schedule, and the records found gone from Visma (marked,
    so a second reconcile does not act on them again)."""

    def status(self, connection: str, entity: str) -> ReconcileStatus: ...

    def request(self, connection: str, entity: str, at: datetime) -> None:
        """Ask for a full reconcile at the entity's next poll (``ml-connector reconcile``)."""

    def completed(self, connection: str, entity: str, started: datetime, counts: dict[str, int]) -> None:
        """A full read that started at ``started`` completed: requests made before then are served."""

    def written(self, connection: str, entity: str) -> Iterator[RecordState]:
        """Every record written to Marketo (its key, Marketo id and version), streamed by a paged read."""

    def gone(self, connection: str, entity: str) -> Iterator[int]:
        """internalIds marked gone from Visma by an earlier reconcile."""

    def mark_gone(self, connection: str, entity: str, internal_ids: Sequence[int], action: str, at: datetime) -> None:
        ...

    def unmark_gone(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        """These records exist in Visma again."""

    def forget_written(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        """Marketo no longer holds these (deleted there): a record that reappears in Visma is written anew."""

    def forget_content(self, connection: str, entity: str, internal_ids: Sequence[int]) -> None:
        """Marketo's content of these differs from what was written (edited by hand): forget the content hash,
        so the writer does not skip the resend as unchanged (the version guard stays)."""


@dataclass(frozen=True)
class State:
    """Every kind of state, each behind its own interface."""

    watermarks: Watermarks
    records: RecordVersions
    quarantine: Quarantine
    jobs: Jobs
    quota: QuotaBlock
    limiter: LimiterItems
    payments: PaymentFactsStore
    numbers: CustomerNumbers
    reference: ReferenceHashes
    runs: Runs
    sweeps: Sweeps
    leases: PollLeases
    reconciles: Reconciles
    windows: Windows
