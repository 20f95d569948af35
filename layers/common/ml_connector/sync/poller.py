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
4. Only a complete window moves the watermark, and never past the moment the poll started. When
   the invocation runs short of time the poll stops cleanly; the next one re-reads the window.
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
from ml_connector.state import QuarantineEntry, RecordState, State, parse_utc_iso, utc_iso
from ml_connector.sync.contacts import CompanyKeys
from ml_connector.sync.ledger import PollLedger
from ml_connector.sync.mapping import EntityMapping, NoMarketoKey
from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.outbox import SQS_MAX_BYTES, fits_in_sqs, message_body
from ml_connector.sync.payment import KnownPaymentFacts, PaymentReader, PollPaymentFacts
from ml_connector.sync.ports import Delivery, Outbox, VismaReader
from ml_connector.validation import describe
from ml_connector.visma.client import ENTITY_PATHS
from ml_connector.visma.errors import VismaError
from ml_connector.visma.models import ContactDto, CustomerDto, SupplierDto, parse_visma_datetime

MAX_PASSES = 3
DTO_BY_ENTITY: dict[str, type[BaseModel]] = {"customer": CustomerDto, "supplier": SupplierDto, "contact": ContactDto}


class MessageSink(Protocol):
    """Where a page's mapped messages go: the SQS queue, or a preview that only compares."""

    def deliver(self, connection: str, entity: VismaEntity, messages: list[SyncMessage]) -> Delivery: ...


class QueueSink:
    """Enqueues the records whose mapped content Marketo does not hold yet (by the content hash the writer
    recorded): an unchanged record costs no message, and no state is written per record here. A record
    sent but not yet written when the next poll re-reads it is sent again; the writer keeps one version."""

    def __init__(self, state: State, outbox: Outbox,
                 remember_numbers: Callable[[str], bool] = lambda _connection: True) -> None:
        self._state = state
        self._outbox = outbox
        # Customer number -> internalId is kept only where contacts need it (a write per customer otherwise).
        self._remember_numbers = remember_numbers

    def deliver(self, connection: str, entity: VismaEntity, messages: list[SyncMessage]) -> Delivery:
        fresh = fresh_versions(self._state, connection, entity, messages)
        oversize = [m for m in fresh if not fits_in_sqs(m)]
        for message in oversize:
            self._quarantine_oversize(message)
        fresh = [m for m in fresh if fits_in_sqs(m)]
        if fresh:
            self._outbox.send(fresh)
            if entity == "customer" and self._remember_numbers(connection):
                self._state.numbers.remember(connection, entity, [(m.number, m.internal_id) for m in fresh])
        return Delivery(len(fresh), len(messages) - len(fresh) - len(oversize),
                        frozenset(m.internal_id for m in oversize))

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
    error: str | None = None
    quarantine_preview: list[dict[str, str]] = []


class _Pass:
    """Bookkeeping for one read of the window; the ids it saw are counted in the poll's ledger, on disk."""

    def __init__(self, ledger: PollLedger, *, note_numbers: bool, started: datetime, tolerance: timedelta) -> None:
        ledger.start_pass()
        self._ledger = ledger
        self._note_numbers = note_numbers  # only payment refreshes need the customers read
        # Rows stamped from here on may have entered the window while this read paged (Visma's clock may lag
        # ours by up to the overlap).
        self.fresh_from = utc_iso(started - tolerance)
        self.total = 0
        self.pages = 0
        self.max_modified: datetime | None = None
        self.complete = False

    def note(self, internal_id: int, number: str | None, modified_at: datetime) -> None:
        self._ledger.note_seen(internal_id, utc_iso(modified_at))
        self.note_customer(internal_id, number)
        if self.max_modified is None or modified_at > self.max_modified:
            self.max_modified = modified_at

    def note_bad(self, ref: str, internal_id: int | None, number: str | None) -> None:
        self._ledger.note_bad(ref)
        self.note_customer(internal_id, number)  # read in this window: no payment refresh for it

    def note_customer(self, internal_id: int | None, number: str | None) -> None:
        if number is not None and self._note_numbers:
            self._ledger.note_read(internal_id, number)

    def sent_before(self, messages: list[SyncMessage]) -> set[int]:
        return self._ledger.sent_before([(m.internal_id, m.content_hash) for m in messages])

    def note_sent(self, messages: list[SyncMessage]) -> None:
        self._ledger.note_sent([(m.internal_id, m.content_hash) for m in messages])

    def saw(self, internal_id: int) -> bool:
        return self._ledger.seen(internal_id)

    def covered(self) -> bool:
        return self._ledger.unique_count() >= self.total

    def proven(self, previous: _Pass | None) -> bool:
        """Complete: the count is covered, and unless rows entered the window while several pages were read
        (a deletion could then hide a skipped row from the count), a later read found no row skipped."""
        if not self.covered():
            return False
        newest = self._ledger.newest_stamp()
        if self.pages <= 1 or newest is None or newest < self.fresh_from:
            return True
        return previous is not None and self._ledger.missed_earlier(previous.fresh_from) == 0


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
    ) -> None:
        self._state = state
        self._sink = sink
        self._dry_run = dry_run
        self._deadline = deadline
        self._margin = safety_margin
        self._clock = clock
        self._quarantined: set[str] = set()  # refs of this entity the poller quarantined earlier
        self._nominal_start: datetime | None = None  # where this window starts without the overlap or a sweep

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
        watermark = self._state.watermarks.get(connection.id, entity)
        report.watermark_before = utc_iso(watermark) if watermark else None
        started = self._clock()
        since, report.deep_sweep = self._window_start(connection, entity, watermark, started)
        self._nominal_start = watermark - timedelta(seconds=connection.visma.overlap_seconds) if watermark else None
        calls_before = client.calls
        self._quarantined = set() if self._dry_run else {
            key.split("#", 1)[1] for key, mark in self._state.quarantine.index(connection.id).items()
            if key.startswith(f"{entity}#") and mark.stage == "poller"}
        try:
            payment_facts = None if payments is None else self._load_payment_facts(ledger, connection.id, payments,
                                                                                    since)
            context = EntityContext(connection, entity, company_id, mapping, payment_facts, company_keys)
            window = self._read_window(client, context, since, report, ledger)
            if payment_facts is not None and window.complete:
                self._send_payment_changes(client, context, payment_facts, window, report)
            if window.complete and not self._dry_run:
                self._send_repairs(client, context, window, report)
        except (PollStoppedEarly, TimeBudgetExceeded):
            report.stopped_early = True
            logger.warning("poll stopped early; the next invocation re-reads the window", extra=report.model_dump())
            window = None
        report.visma_calls = client.calls - calls_before
        if window is not None and window.complete:
            report.complete = True
            if report.deep_sweep and not self._dry_run:
                self._state.sweeps.done(connection.id, entity, started)
            if window.max_modified is not None and not self._dry_run:
                new_mark = min(window.max_modified, started)
                self._state.watermarks.advance(connection.id, entity, new_mark, report.model_dump())
                report.watermark_after = utc_iso(max(new_mark, watermark) if watermark else new_mark)
            else:
                report.watermark_after = report.watermark_before
            if not self._dry_run:
                self._state.watermarks.polled(connection.id, entity, started, report.model_dump())
        self._emit_metrics(report, started)
        return report

    def _window_start(self, connection: ConnectionConfig, entity: VismaEntity, watermark: datetime | None,
                      started: datetime) -> tuple[datetime | None, bool]:
        """Where this poll reads from, and whether it is a deep sweep (a full read counts as one)."""
        if watermark is None:
            return None, True
        v = connection.visma
        since = watermark - timedelta(seconds=v.overlap_seconds)
        last = self._state.sweeps.last(connection.id, entity)
        if last is not None and started - last < timedelta(seconds=v.sweep_interval_seconds):
            return since, False
        return min(since, started - timedelta(seconds=v.sweep_depth_seconds)), True

    def _read_window(
        self, client: VismaReader, ctx: EntityContext, since: datetime | None, report: EntityPollReport,
        ledger: PollLedger,
    ) -> _Pass:
        previous: _Pass | None = None
        tolerance = timedelta(seconds=ctx.connection.visma.overlap_seconds)
        for attempt in range(1, MAX_PASSES + 1):
            window = _Pass(ledger, note_numbers=ctx.payment is not None, started=self._clock(), tolerance=tolerance)
            report.passes = attempt
            for page in client.iter_pages(ctx.entity, modified_since=since, page_size=ctx.connection.visma.page_size):
                window.total = max(window.total, page.total_count)
                window.pages += 1
                report.pages += 1
                self._process_page(page.records, ctx, window, report)
                del page  # memory: not held while the next page is fetched
                self._check_time()
            if window.proven(previous):
                window.complete = True
                return window
            covered = window.covered()
            logger.warning(
                "incomplete window: rows shifted between pages; reading it again" if not covered else
                "rows entered the window while it paged: reading it again to confirm none was skipped",
                extra={"connection": ctx.connection.id, "entity": ctx.entity, "seen": ledger.unique_count(),
                       "total": window.total, "pass": attempt},
            )
            if not covered:
                emit("IncompleteWindows", 1, connection=ctx.connection.id, entity=ctx.entity)
            previous = window
        return window

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
            delivery = self._sink.deliver(ctx.connection.id, ctx.entity, list(candidates.values()))
            report.messages_sent += delivery.sent
            report.already_in_marketo += delivery.skipped
            report.quarantined += len(delivery.refused)
            delivered = {i: m for i, m in candidates.items() if i not in delivery.refused}
            window.note_sent(list(delivered.values()))
            self._release_fixed(ctx, delivered)

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
                            since: datetime | None) -> PollPaymentFacts:
        """The overdue customers' stored facts, overdue invoices and the balance delta, streamed into the ledger
        (other customers' stored facts are read when the poll meets them)."""
        facts = PollPaymentFacts(ledger, self._state.payments, connection)
        facts.load_overdue()
        ledger.add_overdue_invoices(reader.overdue_invoices(self._clock().date()))
        ledger.set_balances(reader.balances(since))
        return facts

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
        if report.late_writes:
            emit("LateWriteSeconds", report.late_write_seconds, MetricUnit.Seconds, **dims)
        # "Marketo is current as of" the start of the last complete poll: lag is the time since, however long
        # ago Visma last changed. Until a first poll completes there is no lag to report (the alarm treats
        # a missing metric as breaching).
        current_as_of = started if report.complete else self._last_complete_poll(report)
        if current_as_of is not None:
            emit("SyncLagSeconds", (self._clock() - current_as_of).total_seconds(), MetricUnit.Seconds, **dims)

    def _last_complete_poll(self, report: EntityPollReport) -> datetime | None:
        entry = self._state.watermarks.entries(report.connection).get(report.entity)
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
