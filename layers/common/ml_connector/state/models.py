"""What the state holds, independent of where: the records every port reads and writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

# Writers' clocks differ by milliseconds (Lambda hosts keep time with Amazon Time Sync); a margin errs
# towards a (cheap) repair.
CLOCK_SLACK = timedelta(milliseconds=100)


def utc_iso(value: datetime) -> str:
    """Fixed-width UTC ISO string, so string order equals time order."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc_iso(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


class WatermarkEntry(BaseModel):
    """One entity's watermark and the summary of the cycle that last moved it."""

    watermark: str | None = None
    last_cycle: dict[str, Any] | None = None
    updated_at: str | None = None
    polled_at: str | None = None  # start of the last complete poll: Marketo is current as of then
    swept_at: str | None = None  # start of the last complete poll that read deep (a sweep for late writes)


class RecordState(BaseModel):
    internal_id: int
    written_modified_at: str | None = None
    written_version: str | None = None  # messages.version_key: what the version guard compares
    written_ts: str | None = None
    written_hash: str | None = None
    written_key: str | None = None  # the Marketo key written (a lead's e-mail can change)
    marketo_id: str | None = None


class ReconcileStatus(BaseModel):
    """One entity's full reconcile: when the last one that completed started, and when one was last asked for."""

    last_started: str | None = None  # utc_iso
    requested_at: str | None = None  # utc_iso; a request newer than last_started is still to be served
    last_counts: dict[str, int] = {}

    def requested(self) -> bool:
        return self.requested_at is not None and (self.last_started is None or self.requested_at > self.last_started)


class WrittenRecord(BaseModel):
    """What Marketo accepted for one record: the version the writer's guard compares next time."""

    entity: str
    internal_id: int
    modified_at: datetime
    visma_ts: str
    version: str
    content_hash: str
    key: str | None = None
    marketo_id: str | None = None
    # When the Marketo call that wrote it started: a write of another version recorded after this moment
    # ran concurrently, so the two may have landed in Marketo in either order.
    call_started: datetime | None = None
    # Which writer process recorded it: one process's own clock needs no margin against itself.
    writer: str | None = None


class WriteRecorded(BaseModel):
    """What recording one write found: ``raced`` when another version's write ran concurrently (or a newer
    one was already recorded), so Marketo may hold the older one and the record must be sent again."""

    recorded: bool
    raced: bool


class RepairEntry(BaseModel):
    """A record whose Marketo content may be older than what was recorded: the poller reads it again."""

    entity: str
    internal_id: int
    number: str


class JobRecord(BaseModel):
    job_id: str
    connection: str
    marketo_object: str
    status: str
    records: int
    created: int = 0
    updated: int = 0
    skipped: int = 0
    error: str | None = None
    message_ids: list[str] = []
    at: str
    # The chunk's messages (zlib + base64), kept for failed jobs so an operator can replay them.
    messages: str | None = None
    # Deferred jobs (Marketo daily quota): when the poller sends them to the queue again.
    retry_after: str | None = None


class QuarantineEntry(BaseModel):
    connection: str
    entity: str
    ref: str
    stage: str
    reason: str
    raw: str
    at: str
    # The record version Marketo refused (writer stage); a later written version resolves the entry.
    version: str | None = None

    @property
    def key(self) -> str:
        return f"{self.entity}#{self.ref}"


class PollRun(BaseModel):
    """A connection's poll runs: the schedule tick the last started poll serves, and the lease of the one
    running now (none when ``lease_until`` is unset or past)."""

    tick: str | None = None  # the schedule tick (UTC ISO) of the last poll that started: due-ness counts from it
    started_at: str | None = None  # when that poll actually started
    owner: str | None = None
    lease_until: str | None = None
    finished_at: str | None = None
    outcome: str | None = None

    def leased(self, now: datetime) -> bool:
        return self.lease_until is not None and self.lease_until > utc_iso(now)


class QuarantineMark(BaseModel):
    """A quarantine entry without its payload: enough to decide whether a record is still held."""

    stage: str
    version: str | None = None


def raced_with(record: WrittenRecord, previous_version: str | None, previous_at: str | None,
               previous_writer: str | None = None) -> bool:
    """The write it replaced was of another (older) version and was recorded after this write's Marketo call
    started: the two calls overlapped, and the older may have landed last."""
    if previous_version in (None, record.version) or previous_at is None or record.call_started is None:
        return False
    slack = CLOCK_SLACK if previous_writer is None or previous_writer != record.writer else timedelta(0)
    return previous_at >= utc_iso(record.call_started - slack)



class RunRecord(BaseModel):
    """One poll cycle of one connection, for ``ml-connector runs``: kept small (one item per connection
    per cycle, billed per KB written)."""

    connection: str
    started: str  # utc_iso: also the sort key, so newest first is a reversed query
    finished: str
    records_read: int = 0
    messages_sent: int = 0
    requeued: int = 0
    errors: int = 0
    error: str | None = None  # the first error, shortened

    @property
    def seconds(self) -> float:
        return round((parse_utc_iso(self.finished) - parse_utc_iso(self.started)).total_seconds(), 3)


class WindowCheckpoint(BaseModel):
    """An entity's poll window that needs more than one invocation: where its read stopped, and what the
    completeness proof has gathered so far (the poll ledger's id sets), so the next invocation continues it."""

    watermark: str | None  # the watermark the window started from (a moved watermark voids the checkpoint)
    since: str | None  # where the window reads from (None: everything)
    started: str  # when the window's first read started: the watermark never passes it
    page_size: int  # the offset pages it read (another page size voids the checkpoint)
    full_read: bool = False
    deep_sweep: bool = False
    invocations: int = 1  # invocations that worked on this window so far
    passes: int = 1  # the pass in progress (1 = the first read of the window)
    pages: int = 0  # pages that pass has read: it continues at page ``pages + 1``
    pass_read: bool = False  # that pass read its last page (it did not prove the window): start another
    read_complete: bool = False  # the window is proven; only the work after it (payment refreshes, repairs) is left
    total: int = 0  # the highest totalCount the pass in progress saw
    window_total: int = 0  # the highest totalCount any pass saw
    fresh_from: str = ""  # rows stamped from here on may have entered the window while the pass paged
    previous_fresh_from: str | None = None  # the same for the previous pass (its confirmation threshold)
    newest: str | None = None  # newest stamp the pass in progress read
    max_modified: str | None = None  # newest stamp any pass read
    seen_before: list[int] = []  # ids the pass read stamped before ``previous_fresh_from``
    seen_after: list[int] = []  # the other ids the pass read
    earlier: list[int] = []  # ids earlier passes read
    bad: list[str] = []  # refs of malformed rows the pass read
    earlier_bad: list[str] = []
    sent: list[tuple[int, str]] = []  # (internalId, short content hash) sent in this window
    read: list[tuple[str, int | None]] = []  # customers read (number, internalId): no payment refresh for them
    # The payment facts' preload the window's first invocation read from Visma (overdue invoices, balances), so a
    # continuation does not read it again (on a large first load it alone can take an invocation).
    payments_loaded: bool = False
    invoices: list[tuple[str, float, int]] = []  # (customer number, open balance, dunning level)
    balances: list[tuple[int | None, str, float]] = []  # (internalId or None, number, balance)
