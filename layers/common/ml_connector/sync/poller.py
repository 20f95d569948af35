"""One poll cycle: Visma changes since the watermark -> mapped SQS messages, nothing lost.

Per connection and entity:

1. ``since`` = watermark - overlap (inclusive ``>=``), so rows sharing the boundary value, rows
   committed while the last poll ran and clock skew are all re-read. Every ``sweep_interval_seconds``
   a poll reads ``sweep_depth_seconds`` back instead, for writes stamped earlier than the overlap when
   they became visible (a lagging clock, a long transaction); ``LateWriteSeconds`` says how much earlier.
2. Every page is streamed: each record is validated (malformed ones are quarantined with the
   reason and the raw record), mapped, and enqueued unless this exact row version
   (``internalId`` + ``timeStamp``) was enqueued before.
3. The window is complete when the unique records seen cover Visma's ``totalCount``; otherwise
   rows shifted between pages while we paged, and the window is read again (already-enqueued rows
   cost no message). A count can hide a shift (a served row deleted while another enters the window
   keeps ``totalCount``, and the row pushed back across a page boundary is never served): a read of
   several pages that served a row entering the window while it paged is confirmed by another read,
   which must find no row the earlier reads skipped.
   Visma's order is unconfirmed: rows sharing a ``lastModifiedDateTime`` may come in another order on every
   request, so no single read covers the count. The ids all passes read together then prove the window,
   as long as no row entered it since it started: every id read was in the window when it started, and the
   highest ``totalCount`` any pass saw is at least that window's size.
4. Only a complete window moves the watermark, and never past the moment its first read started.
5. A window can span invocations. When the invocation runs short of time, the poll saves a checkpoint (the
   pass, the next page, the ids read, what was sent: ``WindowCheckpoint``) and asks for a continuation; the
   next invocation continues from that page with the same ``since``. Its first start caps the watermark, so
   whatever changed while the window was open is stamped after it and is read again by the next window: the
   proof holds across invocations. A window not proven after ``MAX_PASSES`` reads in one invocation is
   saved too and continued by the next scheduled poll (more passes; the union of their ids counts).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from pydantic import BaseModel, ValidationError

from ml_connector.config import ConnectionConfig, VismaEntity
from ml_connector.deadline import NO_DEADLINE, Deadline
from ml_connector.observability import MetricUnit, emit, log_context, logger
from ml_connector.retry import TimeBudgetExceeded
from ml_connector.state import (
    QuarantineEntry,
    RecordState,
    State,
    WatermarkEntry,
    WindowCheckpoint,
    parse_utc_iso,
    utc_iso,
)
from ml_connector.sync.contacts import CompanyKeys
from ml_connector.sync.ledger import PollLedger
from ml_connector.sync.mapping import EntityMapping, NoMarketoKey
from ml_connector.sync.messages import MAX_RECORDS_PER_PACK, SyncMessage
from ml_connector.sync.outbox import SQS_MAX_BYTES, body_fits, message_body
from ml_connector.sync.payment import KnownPaymentFacts, PaymentReader, PollPaymentFacts
from ml_connector.sync.ports import Delivery, FullReadObserver, RecordOutbox, VismaReader
from ml_connector.validation import describe
from ml_connector.visma.client import ENTITY_PATHS
from ml_connector.visma.errors import VismaError
from ml_connector.visma.models import ContactDto, CustomerDto, SupplierDto, parse_visma_datetime

MAX_PASSES = 3  # reads of the window per invocation
# A checkpoint older than this is dropped and the window read afresh: its "sent in this window" set holds back
# a resend of whatever it lists (a message dead-lettered hours ago would wait for the window to end), and a
# window that cannot finish in hours keeps the watermark frozen at its first start; a fresh start bounds both.
WINDOW_MAX_AGE = timedelta(hours=6)
DTO_BY_ENTITY: dict[str, type[BaseModel]] = {"customer": CustomerDto, "supplier": SupplierDto, "contact": ContactDto}


class MessageSink(Protocol):
    """Where a page's mapped messages go: the SQS queue, or a preview that only compares."""

    def deliver(self, connection: str, entity: VismaEntity, messages: list[SyncMessage],
                force: frozenset[int] = frozenset()) -> Delivery: ...

    def flush(self) -> None:
        """Send whatever ``deliver`` holds back; called before a window's progress is kept (checkpoint, watermark)."""
        ...


class QueueSink:
    """Enqueues the records whose mapped content Marketo does not hold yet (by the content hash the writer
    recorded): an unchanged record costs no message, and no state is written per record here. A record
    sent but not yet written when the next poll re-reads it is sent again; the writer keeps one version.

    Records go out in whole packs of 300 (one Marketo call each): a page's remainder waits for the next page's
    records, so a window of 1,000-record pages makes 300-record packs, not 300/300/300/100 a page (the writers
    merge part-filled packs only within one invocation's batch). ``flush`` sends the remainder; the poller calls
    it before it keeps the window's progress, so nothing held back is ever counted as sent."""

    def __init__(self, state: State, outbox: RecordOutbox,
                 remember_numbers: Callable[[str], bool] = lambda _connection: True) -> None:
        self._state = state
        self._outbox = outbox
        # Under a pack's worth, of one connection and entity (``_held_for``), held serialised: the models with
        # their fields take about four times the memory, and up to 299 of them would be held while the next
        # page is fetched and parsed, the poller's peak.
        self._held: list[str] = []
        self._held_for: tuple[str, VismaEntity] | None = None
        # Customer number -> internalId is kept only where contacts need it (a write per customer otherwise).
        self._remember_numbers = remember_numbers

    def deliver(self, connection: str, entity: VismaEntity, messages: list[SyncMessage],
                force: frozenset[int] = frozenset()) -> Delivery:
        """``force``: internalIds sent even though Marketo holds their content hash (edited by hand there)."""
        fresh = fresh_versions(self._state, connection, entity, [m for m in messages if m.internal_id not in force])
        fresh += [m for m in messages if m.internal_id in force]
        bodies = [message_body(m) for m in fresh]  # once: what is measured is what is sent
        oversize = [m for m, body in zip(fresh, bodies, strict=True) if not body_fits(body)]
        for message in oversize:
            self._quarantine_oversize(message)
        sendable = [(m, body) for m, body in zip(fresh, bodies, strict=True) if body_fits(body)]
        if sendable:
            self._send_whole_packs((connection, entity), [body for _, body in sendable])
            if entity == "customer" and self._remember_numbers(connection):
                self._state.numbers.remember(connection, entity, [(m.number, m.internal_id) for m, _ in sendable])
        return Delivery(len(sendable), len(messages) - len(sendable) - len(oversize),
                        frozenset(m.internal_id for m in oversize))

    def _send_whole_packs(self, held_for: tuple[str, VismaEntity], records: list[str]) -> None:
        if self._held_for != held_for:
            self.flush()
        pending = self._held + records
        whole = len(pending) - len(pending) % MAX_RECORDS_PER_PACK
        self._held, self._held_for = pending[whole:], held_for
        if whole:
            self._outbox.send_records(pending[:whole])

    def flush(self) -> None:
        held, self._held = self._held, []
        if held:
            self._outbox.send_records(held)

    def _quarantine_oversize(self, message: SyncMessage) -> None:
        """A record whose message SQS cannot carry is held with its reason; it never fails the whole poll."""
        size = len(message_body(message).encode("utf-8"))
        reason = f"mapped message is {size} bytes, over SQS's {SQS_MAX_BYTES}-byte limit"
        self._state.quarantine.put(QuarantineEntry(
            connection=message.connection, entity=message.entity, ref=str(message.internal_id), stage="poller",
            reason=reason, raw=message_body(message)[:100_000], at=utc_iso(datetime.now(UTC))))
        logger.warning("record quarantined", extra={"entity": message.entity, "ref": message.internal_id,
                                                    "reason": reason})


def _held_by_marketo(state: RecordState | None, message: SyncMessage) -> bool:
    return state is not None and state.written_hash == message.content_hash and state.written_key in (None, message.key)


def fresh_versions(state: State, connection: str, entity: VismaEntity,
                   messages: list[SyncMessage]) -> list[SyncMessage]:
    """The messages whose mapped content Marketo does not hold (by the content hash the writer recorded).
    Eventually consistent, at half the price: a stale answer can only cost a message sent twice."""
    held = state.records.get(connection, entity, (m.internal_id for m in messages), consistent=False)
    return [m for m in messages if not _held_by_marketo(held.get(m.internal_id), m)]


class PollStoppedEarly(Exception):
    """Not enough time left in this invocation to finish the window."""


class EntityPollReport(BaseModel):
    connection: str
    entity: VismaEntity
    records_read: int = 0
    messages_sent: int = 0
    already_in_marketo: int = 0  # read, but Marketo holds their content already: no message
    sent_earlier_in_poll: int = 0  # read again by another pass of this poll, same content: no second message
    quarantined: int = 0
    pages: int = 0
    passes: int = 0
    complete: bool = False
    stopped_early: bool = False
    watermark_before: str | None = None
    watermark_after: str | None = None
    visma_calls: int = 0
    payment_refreshes: int = 0
    repairs: int = 0  # records read again because concurrent writes of two versions overlapped
    deep_sweep: bool = False  # this poll read sweep_depth_seconds back (or everything)
    late_writes: int = 0  # new versions stamped before the normal window's start: only a sweep finds them
    late_write_seconds: float = 0.0  # how far before it the latest-visible of them was stamped, at most
    without_key: int = 0  # records Marketo cannot identify (a contact without e-mail): not synced
    resumed: bool = False  # this poll continued a window an earlier invocation started
    invocations: int = 0  # invocations that worked on this window, this one included
    checkpointed: bool = False  # the window is still open: saved for the next invocation
    continues: bool = False  # ... and stopped for time: a continuation should start right away
    full_read: bool = False  # the window reads everything (reconcile asked for it)
    reconcile: dict[str, int] = {}
    error: str | None = None
    quarantine_preview: list[dict[str, str]] = []


@dataclass
class _Window:
    """One window across its passes and invocations: where it reads from, and what all passes saw together."""

    watermark: datetime | None
    since: datetime | None
    started: datetime  # when its first read started: the watermark cap
    tolerance: timedelta
    full_read: bool = False
    deep_sweep: bool = False
    invocations: int = 1
    passes: int = 0  # the pass in progress
    total: int = 0  # the highest totalCount any pass saw
    max_modified: datetime | None = None  # the newest stamp any pass read

    @property
    def fresh_from(self) -> str:
        """Rows stamped from here on may have entered the window since it started."""
        return utc_iso(self.started - self.tolerance)

    def note_stamp(self, modified_at: datetime) -> None:
        if self.max_modified is None or modified_at > self.max_modified:
            self.max_modified = modified_at


class _Pass:
    """Bookkeeping for one read of the window; the ids it saw are counted in the poll's ledger, on disk."""

    def __init__(self, ledger: PollLedger, window: _Window, *, note_numbers: bool, started: datetime,
                 previous_fresh_from: str | None, restored: WindowCheckpoint | None = None) -> None:
        if restored is None:
            ledger.start_pass()
        self._ledger = ledger
        self._window = window
        self._note_numbers = note_numbers  # only payment refreshes need the customers read
        # Rows stamped from here on may have entered the window while this read paged (Visma's clock may lag
        # ours by up to the overlap).
        self.fresh_from = restored.fresh_from if restored else utc_iso(started - window.tolerance)
        self.previous_fresh_from = previous_fresh_from
        self.total = restored.total if restored else 0
        self.pages = restored.pages if restored else 0  # pages read so far: the next one is pages + 1
        self.read_all = restored.pass_read if restored else False
        self.complete = restored.read_complete if restored else False

    def note(self, internal_id: int, number: str | None, modified_at: datetime) -> None:
        self._ledger.note_seen(internal_id, utc_iso(modified_at))
        self.note_customer(internal_id, number)
        self._window.note_stamp(modified_at)

    def note_bad(self, ref: str, internal_id: int | None, number: str | None) -> None:
        self._ledger.note_bad(ref)
        self.note_customer(internal_id, number)  # read in this window: no payment refresh for it

    def note_customer(self, internal_id: int | None, number: str | None) -> None:
        if number is not None and self._note_numbers:
            self._ledger.note_read(internal_id, number)

    def note_total(self, total: int) -> None:
        self.total = max(self.total, total)
        self._window.total = max(self._window.total, total)

    def sent_before(self, messages: list[SyncMessage]) -> set[int]:
        return self._ledger.sent_before([(m.internal_id, m.content_hash) for m in messages])

    def note_sent(self, messages: list[SyncMessage]) -> None:
        self._ledger.note_sent([(m.internal_id, m.content_hash) for m in messages])

    def saw(self, internal_id: int) -> bool:
        return self._ledger.seen(internal_id)

    def covered(self) -> bool:
        return self._ledger.unique_count() >= self.total

    def proven(self) -> bool:
        return self._read_proven() or self._passes_proven()

    def _read_proven(self) -> bool:
        """This read is complete: the count is covered, and unless rows entered the window while several pages
        were read (a deletion could then hide a skipped row from the count), a later read found no row skipped."""
        if not self.covered():
            return False
        newest = self._ledger.newest_stamp()
        if self.pages <= 1 or not newest or newest < self.fresh_from:
            return True
        return self.previous_fresh_from is not None and self._ledger.missed_earlier(self.previous_fresh_from) == 0

    def _passes_proven(self) -> bool:
        """The reads together are complete (Visma served rows in a different order to each: ties on the stamp).
        Only while no row entered the window since it started: then every id read was in the window when the
        first read began, and the highest count any pass saw is at least that window's size, so the ids cover
        it. A row that entered later is stamped after the watermark cap and read by the next window."""
        window = self._window
        if window.passes <= 1 or (window.max_modified is not None
                                  and utc_iso(window.max_modified) >= window.fresh_from):
            return False
        return self._ledger.union_count() >= window.total

    def checkpoint(self, window: _Window, page_size: int) -> WindowCheckpoint:
        newest = self._ledger.newest_stamp()
        return WindowCheckpoint.model_validate({
            "watermark": utc_iso(window.watermark) if window.watermark else None,
            "since": utc_iso(window.since) if window.since else None, "started": utc_iso(window.started),
            "page_size": page_size, "full_read": window.full_read, "deep_sweep": window.deep_sweep,
            "invocations": window.invocations, "passes": window.passes, "pages": self.pages,
            "pass_read": self.read_all, "read_complete": self.complete, "total": self.total,
            "window_total": window.total, "fresh_from": self.fresh_from,
            "previous_fresh_from": self.previous_fresh_from, "newest": newest or None,
            "max_modified": utc_iso(window.max_modified) if window.max_modified else None,
            **self._ledger.snapshot(self.previous_fresh_from), **self._ledger.payment_preload()})


def _restore(ledger: PollLedger, checkpoint: WindowCheckpoint) -> None:
    ledger.restore(checkpoint.seen_before, checkpoint.seen_after, checkpoint.newest, checkpoint.earlier,
                   checkpoint.bad, checkpoint.earlier_bad, checkpoint.sent, checkpoint.read)


class Poller:
    def __init__(
        self,
        state: State,
        sink: MessageSink,
        *,
        dry_run: bool = False,
        deadline: Deadline = NO_DEADLINE,
        safety_margin: float = 20.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        full_reads: FullReadObserver | None = None,
    ) -> None:
        self._state = state
        self._sink = sink
        self._dry_run = dry_run
        self._deadline = deadline
        self._margin = safety_margin
        self._clock = clock
        self._full_reads = full_reads
        self._quarantined: set[str] = set()  # refs of this entity the poller quarantined earlier
        self._nominal_start: datetime | None = None  # where this window starts without the overlap or a sweep
        self._current: _Pass | None = None  # the read in progress (what a checkpoint saves)
        self._window: _Window | None = None
        self._entry: WatermarkEntry | None = None  # the entity's watermark item, as this poll read it

    def poll_entity(
        self,
        connection: ConnectionConfig,
        client: VismaReader,
        entity: VismaEntity,
        *,
        company_id: str,
        mapping: EntityMapping,
        payments: PaymentReader | None = None,
        company_keys: CompanyKeys | None = None,
    ) -> EntityPollReport:
        with log_context(connection=connection.id, entity=entity), PollLedger() as ledger:
            return self._poll_entity(connection, client, entity, company_id, mapping, payments, company_keys, ledger)

    def _poll_entity(self, connection: ConnectionConfig, client: VismaReader, entity: VismaEntity, company_id: str,
                     mapping: EntityMapping, payments: PaymentReader | None,
                     company_keys: CompanyKeys | None, ledger: PollLedger) -> EntityPollReport:
        report = EntityPollReport(connection=connection.id, entity=entity)
        # One read: the watermark, the last complete poll (for the lag metric) and the last deep sweep.
        entry = self._entry = self._state.watermarks.entry(connection.id, entity)
        watermark = parse_utc_iso(entry.watermark) if entry and entry.watermark else None
        report.watermark_before = utc_iso(watermark) if watermark else None
        checkpoint = self._open_checkpoint(connection, entity, watermark)
        swept = parse_utc_iso(entry.swept_at) if entry and entry.swept_at else None
        window = self._window = self._resume(checkpoint, watermark, connection, ledger) if checkpoint else \
            self._new_window(connection, entity, watermark, swept)
        self._current = None
        report.deep_sweep, report.full_read = window.deep_sweep, window.full_read
        report.resumed, report.invocations = checkpoint is not None, window.invocations
        started = window.started
        self._nominal_start = watermark - timedelta(seconds=connection.visma.overlap_seconds) if watermark else None
        calls_before = client.calls
        self._quarantined = set() if self._dry_run else {
            key.split("#", 1)[1] for key, mark in self._state.quarantine.index(connection.id).items()
            if key.startswith(f"{entity}#") and mark.stage == "poller"}
        try:
            payment_facts = None if payments is None else self._load_payment_facts(
                ledger, connection.id, payments, self._balances_since(window, entry), checkpoint)
            context = EntityContext(connection, entity, company_id, mapping, payment_facts, company_keys)
            read = self._read_window(client, context, window, report, ledger, checkpoint)
            if payment_facts is not None and read.complete:
                self._send_payment_changes(client, context, payment_facts, read, report)
            if read.complete and not self._dry_run:
                self._send_repairs(client, context, read, report)
            if not read.complete:
                self._save_window(connection, entity, report)
        except (PollStoppedEarly, TimeBudgetExceeded):
            report.stopped_early = True
            self._save_window(connection, entity, report)
            report.continues = report.checkpointed
            logger.warning("poll stopped early; the window continues in the next invocation" if report.checkpointed
                           else "poll stopped early; the next invocation re-reads the window",
                           extra=report.model_dump())
            read = None
        report.visma_calls = client.calls - calls_before
        if read is not None and read.complete:
            report.complete = True
            self._advance(connection, entity, window, report, ledger)
        self._emit_metrics(report, started)
        return report

    def _open_checkpoint(self, connection: ConnectionConfig, entity: VismaEntity,
                         watermark: datetime | None) -> WindowCheckpoint | None:
        """The entity's open window, if it can be continued; one that cannot is dropped."""
        if self._dry_run:
            return None  # a preview reads its own window and leaves the real one as it is
        checkpoint = self._state.windows.get(connection.id, entity)
        if checkpoint is None:
            return None
        stale = None
        if checkpoint.watermark != (utc_iso(watermark) if watermark else None):
            stale = "the watermark moved since the window started"  # another poll completed a window meanwhile
        elif checkpoint.page_size != connection.visma.page_size:
            stale = "the page size changed"  # its next page would be another offset
        elif self._clock() - parse_utc_iso(checkpoint.started) > WINDOW_MAX_AGE:
            stale = f"the window started over {WINDOW_MAX_AGE} ago"
        if stale is None:
            return checkpoint
        logger.warning("open window dropped; reading it afresh", extra={"reason": stale})
        self._state.windows.delete(connection.id, entity)
        return None

    def _new_window(self, connection: ConnectionConfig, entity: VismaEntity, watermark: datetime | None,
                    swept: datetime | None) -> _Window:
        started = self._clock()
        tolerance = timedelta(seconds=connection.visma.overlap_seconds)
        full_read = (not self._dry_run and self._full_reads is not None
                     and self._full_reads.full_read_due(connection, entity, started))
        since, deep_sweep = (None, True) if full_read else self._window_start(connection, watermark, swept, started)
        return _Window(watermark, since, started, tolerance, full_read=full_read, deep_sweep=deep_sweep)

    def _resume(self, checkpoint: WindowCheckpoint, watermark: datetime | None, connection: ConnectionConfig,
                ledger: PollLedger) -> _Window:
        _restore(ledger, checkpoint)
        window = _Window(watermark, parse_utc_iso(checkpoint.since) if checkpoint.since else None,
                         parse_utc_iso(checkpoint.started), timedelta(seconds=connection.visma.overlap_seconds),
                         full_read=checkpoint.full_read, deep_sweep=checkpoint.deep_sweep,
                         invocations=checkpoint.invocations + 1, passes=checkpoint.passes,
                         total=checkpoint.window_total,
                         max_modified=parse_utc_iso(checkpoint.max_modified) if checkpoint.max_modified else None)
        logger.info("continuing an open window", extra={"pass": checkpoint.passes, "next_page": checkpoint.pages + 1,
                                                        "invocations": window.invocations})
        return window

    def _save_window(self, connection: ConnectionConfig, entity: VismaEntity, report: EntityPollReport) -> None:
        """Keep the window's progress for the next invocation (not in a preview, and not before a read began)."""
        self._sink.flush()  # what the checkpoint lists as sent has been sent
        if self._dry_run or self._current is None or self._window is None:
            return
        self._state.windows.save(connection.id, entity,
                                 self._current.checkpoint(self._window, connection.visma.page_size))
        report.checkpointed = True

    def _advance(self, connection: ConnectionConfig, entity: VismaEntity, window: _Window,
                 report: EntityPollReport, ledger: PollLedger) -> None:
        """A complete window: the watermark moves (never past the window's first start) and the window closes."""
        self._sink.flush()  # every record of the window is on the queue before the watermark passes it
        started, watermark = window.started, window.watermark
        if self._dry_run:
            report.watermark_after = report.watermark_before
            return
        new_mark = None if window.max_modified is None else min(window.max_modified, started)
        report.watermark_after = report.watermark_before if new_mark is None else \
            utc_iso(max(new_mark, watermark) if watermark else new_mark)
        # One write: the watermark, the poll's start as the last complete poll, and as the last sweep when deep.
        self._state.watermarks.complete(connection.id, entity, started, new_mark, swept=report.deep_sweep,
                                        summary=report.model_dump())
        if report.resumed or report.checkpointed:  # (no checkpoint was found otherwise: nothing to close)
            self._state.windows.delete(connection.id, entity)
        if window.full_read and self._full_reads is not None:
            self._complete_full_read(connection, entity, window, report, ledger)

    def _complete_full_read(self, connection: ConnectionConfig, entity: VismaEntity, window: _Window,
                            report: EntityPollReport, ledger: PollLedger) -> None:
        assert self._full_reads is not None
        try:
            report.reconcile = self._full_reads.full_read_complete(connection, entity, ledger.all_seen_ids(),
                                                                   window.started)
            logger.info("full read complete", extra={"reconcile": report.reconcile})
        except Exception as exc:  # noqa: BLE001 - the window is done and the watermark moved; report, don't fail
            logger.exception("reconcile after a full read failed")
            report.error = f"reconcile: {type(exc).__name__}: {exc}"

    @staticmethod
    def _window_start(connection: ConnectionConfig, watermark: datetime | None, last: datetime | None,
                      started: datetime) -> tuple[datetime | None, bool]:
        """Where this poll reads from, and whether it is a deep sweep (a full read counts as one); ``last``: the
        last deep sweep."""
        if watermark is None:
            return None, True
        v = connection.visma
        since = watermark - timedelta(seconds=v.overlap_seconds)
        if last is not None and started - last < timedelta(seconds=v.sweep_interval_seconds):
            return since, False
        return min(since, started - timedelta(seconds=v.sweep_depth_seconds)), True

    def _read_window(
        self, client: VismaReader, ctx: EntityContext, window: _Window, report: EntityPollReport,
        ledger: PollLedger, checkpoint: WindowCheckpoint | None,
    ) -> _Pass:
        """Up to MAX_PASSES reads (the first may continue one an earlier invocation began) until one proves
        the window; the last read, proven or not."""
        current = self._current = None if checkpoint is None else _Pass(
            ledger, window, note_numbers=ctx.payment is not None, started=window.started,
            previous_fresh_from=checkpoint.previous_fresh_from, restored=checkpoint)
        if current is not None and current.complete:
            return current  # proven by an earlier invocation: only refreshes and repairs were left
        for _ in range(MAX_PASSES):
            if current is None or current.read_all:
                window.passes += 1
                current = self._current = _Pass(
                    ledger, window, note_numbers=ctx.payment is not None, started=self._clock(),
                    previous_fresh_from=current.fresh_from if current else None)
            report.passes = window.passes
            self._read_pages(client, ctx, current, report)
            if current.proven():
                current.complete = True
                return current
            covered = current.covered()
            logger.warning(
                "incomplete window: rows shifted between pages; reading it again" if not covered else
                "rows entered the window while it paged: reading it again to confirm none was skipped",
                extra={"connection": ctx.connection.id, "entity": ctx.entity, "seen": ledger.unique_count(),
                       "total": current.total, "pass": window.passes},
            )
            if not covered:
                emit("IncompleteWindows", 1, connection=ctx.connection.id, entity=ctx.entity)
        assert current is not None
        return current

    def _read_pages(self, client: VismaReader, ctx: EntityContext, current: _Pass, report: EntityPollReport) -> None:
        """The rest of one read: from the page after the last one read, to the end."""
        assert self._window is not None
        for page in client.iter_pages(ctx.entity, modified_since=self._window.since,
                                      page_size=ctx.connection.visma.page_size, first_page=current.pages + 1):
            current.note_total(page.total_count)
            self._process_page(page.records, ctx, current, report)
            current.pages += 1  # after the page is processed: a stop within it reads the page again
            report.pages += 1
            last = current.pages * ctx.connection.visma.page_size >= page.total_count
            del page  # memory: not held while the next page is fetched
            if not last:  # after the last page the pass is read: no invocation should continue it for nothing
                self._check_time()
        current.read_all = True

    def _process_page(
        self, records: list[dict[str, Any]], ctx: EntityContext, window: _Pass, report: EntityPollReport
    ) -> None:
        candidates: dict[int, SyncMessage] = {}
        if ctx.company_keys is not None:
            ctx.company_keys.prefetch(r.get("businessAccount") for r in records if isinstance(r, dict))
        if ctx.payment is not None:
            ctx.payment.prefetch(r.get("internalId") for r in records if isinstance(r, dict))
        for raw in records:
            report.records_read += 1
            message = self._to_message(raw, ctx, window, report)
            if message is not None:
                candidates[message.internal_id] = message
        # A record another pass of this poll already sent with this content is not sent again (a re-read
        # window would otherwise send every record Marketo does not hold yet twice).
        repeated = window.sent_before(list(candidates.values()))
        candidates = {i: m for i, m in candidates.items() if i not in repeated}
        report.sent_earlier_in_poll += len(repeated)
        if candidates:
            self._note_late_writes(ctx, list(candidates.values()), report)
            delivery = self._sink.deliver(ctx.connection.id, ctx.entity, list(candidates.values()),
                                          force=self._drifted(ctx, list(candidates.values())))
            report.messages_sent += delivery.sent
            report.already_in_marketo += delivery.skipped
            report.quarantined += len(delivery.refused)
            delivered = {i: m for i, m in candidates.items() if i not in delivery.refused}
            window.note_sent(list(delivered.values()))
            self._release_fixed(ctx, delivered)

    def _drifted(self, ctx: EntityContext, messages: list[SyncMessage]) -> frozenset[int]:
        """During a full read: records whose Marketo fields drifted from what was written (sent regardless)."""
        window = self._window
        if self._full_reads is None or window is None or not window.full_read or self._dry_run:
            return frozenset()
        return frozenset(self._full_reads.drifted(ctx.connection, ctx.entity, messages))

    def _note_late_writes(self, ctx: EntityContext, messages: list[SyncMessage], report: EntityPollReport) -> None:
        """New versions stamped before where the window would start without a sweep: the overlap missed them."""
        start = self._nominal_start
        late = [m for m in messages if start is not None and m.modified_at < start]
        if not late or self._dry_run:
            return
        for message in fresh_versions(self._state, ctx.connection.id, ctx.entity, late):
            assert start is not None
            report.late_writes += 1
            report.late_write_seconds = max(report.late_write_seconds, (start - message.modified_at).total_seconds())

    def _release_fixed(self, ctx: EntityContext, sent: dict[int, SyncMessage]) -> None:
        """A record quarantined by an earlier poll that now validates (fixed in Visma) leaves the quarantine."""
        for ref in self._quarantined & {str(i) for i in sent}:
            self._state.quarantine.release(ctx.connection.id, ctx.entity, ref)
            self._quarantined.discard(ref)
            logger.info("quarantined record fixed in Visma and sent", extra={"entity": ctx.entity, "ref": ref})

    def _to_message(
        self, raw: dict[str, Any], ctx: EntityContext, window: _Pass, report: EntityPollReport
    ) -> SyncMessage | None:
        try:
            message = build_message(raw, ctx)
        except RecordWithoutKey as missing:
            report.without_key += 1
            window.note(missing.internal_id, None, missing.modified_at)
            return None
        except (ValidationError, ValueError, TypeError) as exc:
            ref = _record_ref(raw)
            number = raw.get("number") if isinstance(raw, dict) else None
            window.note_bad(ref, int(ref) if ref.isdigit() else None, None if number is None else str(number))
            reason = _reason(exc)
            report.quarantined += 1
            entry = QuarantineEntry(
                connection=ctx.connection.id, entity=ctx.entity, ref=ref, stage="poller",
                reason=reason,
                # ASCII escapes: a lone surrogate from Visma must not make the quarantine write itself fail.
                raw=json.dumps(raw, default=str)[:100_000],
                at=utc_iso(self._clock()),
            )
            if self._dry_run:
                report.quarantine_preview.append({"ref": ref, "reason": entry.reason})
            else:
                self._state.quarantine.put(entry)
            logger.warning("record quarantined", extra={"entity": ctx.entity, "ref": ref, "reason": reason})
            return None
        window.note(message.internal_id, message.number, message.modified_at)
        return message

    def _load_payment_facts(self, ledger: PollLedger, connection: str, reader: PaymentReader,
                            since: datetime | None, checkpoint: WindowCheckpoint | None) -> PollPaymentFacts:
        """The overdue customers' stored facts, overdue invoices and the balance delta, streamed into the ledger
        (other customers' stored facts are read when the poll meets them). A window that continues takes the
        invoices and balances its first invocation read from its checkpoint: read again, they could take a
        whole invocation of a large first load every time, and the window would never finish."""
        facts = PollPaymentFacts(ledger, self._state.payments, connection)
        facts.load_overdue()
        if checkpoint is not None and checkpoint.payments_loaded:
            ledger.add_overdue_invoices(checkpoint.invoices)
            ledger.set_balances(checkpoint.balances)
        else:
            ledger.add_overdue_invoices(reader.overdue_invoices(self._clock().date()))
            ledger.set_balances(reader.balances(since))
        ledger.payments_loaded()
        return facts

    @staticmethod
    def _balances_since(window: _Window, entry: WatermarkEntry | None) -> datetime | None:
        """Balances changed since the last complete poll started, less the overlap (as for records), rather than
        since the records' window: a connection whose invoices change daily but whose customers seldom do would
        otherwise read every balance changed since its last customer edit (and their stored facts) on every poll.
        The last poll read the balances after it started and stored the facts when it completed. A deep sweep or
        a full read reads as deep as its window (late-visible changes)."""
        if window.since is None or window.deep_sweep or entry is None or not entry.polled_at:
            return window.since
        return max(window.since, parse_utc_iso(entry.polled_at) - window.tolerance)

    def _send_payment_changes(self, client: VismaReader, ctx: EntityContext, facts: PollPaymentFacts,
                              window: _Pass, report: EntityPollReport) -> None:
        """Customers whose payment facts changed but whose record did not: fetch and send them too.

        The changed facts are stored only after that, so a poll that stops early finds them changed again."""
        facts.merge()
        for number in facts.refresh_numbers():
            try:
                raw = client.get(f"/v1/customer/{quote(number, safe='')}")
            except VismaError as exc:
                if exc.status != 404:
                    raise
                continue  # the customer is gone; its facts are still recorded below
            report.payment_refreshes += 1
            self._process_page([raw], ctx, window, report)  # only notes more of what this window read
            self._check_time()
        if not self._dry_run:
            facts.merge()  # with the numbers the refreshes read
            facts.store_changes()

    def _send_repairs(self, client: VismaReader, ctx: EntityContext, window: _Pass, report: EntityPollReport) -> None:
        """Records a writer flagged because another version's write overlapped its own: Marketo may hold the
        older one. Read each from Visma and send it whatever its version, so the newest is written last."""
        connection, entity = ctx.connection.id, ctx.entity
        repairs = self._state.records.repairs(connection, entity)
        if not repairs:
            return
        for repair in repairs:
            report.repairs += 1
            if window.saw(repair.internal_id):
                continue  # read in this window already, and sent: Marketo no longer holds its content hash
            ref = repair.internal_id if entity == "contact" else repair.number
            try:
                raw = client.get(f"{ENTITY_PATHS[entity]}/{quote(str(ref), safe='')}")
            except VismaError as exc:
                if exc.status != 404:
                    raise
                continue  # gone from Visma: nothing newer to write
            self._process_page([raw], ctx, window, report)
            self._check_time()
        self._state.records.repaired(connection, entity, [r.internal_id for r in repairs])

    def _check_time(self) -> None:
        if self._deadline.within(self._margin):
            raise PollStoppedEarly

    def _emit_metrics(self, report: EntityPollReport, started: datetime) -> None:
        dims = {"connection": report.connection, "entity": report.entity}
        for name, value in (("RecordsPolled", report.records_read), ("RecordsEnqueued", report.messages_sent),
                            ("RecordsQuarantined", report.quarantined)):
            emit(name, value, MetricUnit.Count, **dims)
        if self._dry_run:
            return
        if report.resumed:  # a window that spans invocations (this one continued it)
            emit("WindowContinued", 1, MetricUnit.Count, **dims)
        if report.late_writes:
            emit("LateWriteSeconds", report.late_write_seconds, MetricUnit.Seconds, **dims)
        # "Marketo is current as of" the start of the last complete poll (of a window spanning invocations, its
        # first start): lag is the time since, however long ago Visma last changed. Until a first poll completes
        # there is no lag to report (the alarm treats a missing metric as breaching).
        current_as_of = started if report.complete else self._last_complete_poll(report)
        if current_as_of is not None:
            emit("SyncLagSeconds", (self._clock() - current_as_of).total_seconds(), MetricUnit.Seconds, **dims)

    def _last_complete_poll(self, report: EntityPollReport) -> datetime | None:
        """As read when this poll started (an incomplete poll writes none)."""
        entry = self._entry
        return parse_utc_iso(entry.polled_at) if entry and entry.polled_at else None


@dataclass(frozen=True)
class EntityContext:
    connection: ConnectionConfig
    entity: VismaEntity
    company_id: str
    mapping: EntityMapping
    # Payment facts of customers, when the mapping uses them (customers only).
    payment: KnownPaymentFacts | None = None
    # Contacts: their customer's Marketo company key, by business account number.
    company_keys: CompanyKeys | None = None

    def mapping_input(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The raw record plus the synthetic sources a rule can name (``_payment``, ``_company_key``)."""
        extra: dict[str, Any] = {}
        if self.payment is not None:
            extra["_payment"] = self.payment.facts_for(raw["internalId"], str(raw.get("number"))).model_dump()
        if self.company_keys is not None:
            extra["_company_key"] = self.company_keys.key_for(raw.get("businessAccount"))
        return {**raw, **extra} if extra else raw


class RecordWithoutKey(Exception):
    """A valid record Marketo cannot identify (no e-mail on a contact): counted, not synced, not quarantined."""

    def __init__(self, internal_id: int, modified_at: datetime, reason: str) -> None:
        super().__init__(reason)
        self.internal_id = internal_id
        self.modified_at = modified_at


def build_message(raw: dict[str, Any], ctx: EntityContext) -> SyncMessage:
    """Validate one raw Visma record and map it; raises ValidationError/ValueError for a malformed one."""
    dto: Any = DTO_BY_ENTITY[ctx.entity].model_validate(raw)
    modified_at = parse_visma_datetime(dto.lastModifiedDateTime, ctx.connection.visma.zone)
    source = ctx.mapping_input(raw)
    try:
        key = ctx.mapping.key(company_id=ctx.company_id, entity=ctx.entity, internal_id=dto.internalId, record=source)
    except NoMarketoKey as exc:
        raise RecordWithoutKey(dto.internalId, modified_at, str(exc)) from exc
    return SyncMessage.build(
        connection=ctx.connection.id,
        entity=ctx.entity,
        internal_id=dto.internalId,
        number=dto.number,
        marketo_object=ctx.mapping.target,
        dedupe_field=ctx.mapping.dedupe_field,
        key=key,
        modified_at=modified_at,
        visma_timestamp=str(dto.timeStamp or utc_iso(modified_at)),
        fields=ctx.mapping.map(source, entity=ctx.entity, modified_at=modified_at),
    )


def _record_ref(raw: Any) -> str:
    internal_id = raw.get("internalId") if isinstance(raw, dict) else None
    if isinstance(internal_id, int):
        return str(internal_id)
    digest = hashlib.sha256(json.dumps(raw, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"raw-{digest}"


def _reason(exc: Exception) -> str:
    reason = describe(exc) if isinstance(exc, ValidationError) else str(exc)
    return reason.encode("utf-8", "backslashreplace").decode("utf-8")  # storable whatever Visma sent
