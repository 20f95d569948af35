"""Issue 16, windows that span invocations, on in-memory state and a fake Visma: an invocation that runs out of
time saves the window and the next continues it from the next page; the watermark never passes the window's
first start; records changed while it is open are not lost; rows sharing a stamp that Visma orders differently
on every request still complete the window; the full-read hook reconcile uses."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sync_fakes import (
    CONNECTION,
    NOW,
    FakeMarketo,
    FakeOutbox,
    FakeVisma,
    customer,
    customer_mapping,
    minutes,
    visma_stamp,
    write,
)

from ml_connector.config import ConnectionConfig, VismaEntity
from ml_connector.deadline import Deadline
from ml_connector.state import State
from ml_connector.state.memory import memory_state
from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.payment import PaymentReader
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink

ONE_PAGE = Deadline(lambda: 4.0)  # under the 5 s margin: every invocation stops after its first page


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def invoke(state: State, visma: FakeVisma, outbox: FakeOutbox, clock: Clock, deadline: Deadline | None = ONE_PAGE,
           connection: ConnectionConfig = CONNECTION, full_reads: Any = None) -> EntityPollReport:
    """One poller invocation of the customer entity."""
    poller = Poller(state, QueueSink(state, outbox), clock=clock, safety_margin=5,
                    **({"deadline": deadline} if deadline else {}),
                    **({"full_reads": full_reads} if full_reads else {}))
    return poller.poll_entity(connection, visma, "customer", company_id="1", mapping=customer_mapping())


def until_complete(state: State, visma: FakeVisma, outbox: FakeOutbox, clock: Clock, *, step: timedelta = minutes(1),
                   limit: int = 12, **kwargs: Any) -> list[EntityPollReport]:
    """Invocations one after another (a continuation starts right away) until one completes the window."""
    reports = []
    while not reports or not reports[-1].complete:
        assert len(reports) < limit, [r.model_dump(include={"passes", "pages", "complete"}) for r in reports]
        reports.append(invoke(state, visma, outbox, clock, **kwargs))
        clock.at += step
    return reports


def seven_customers() -> list[dict[str, Any]]:
    return [customer(i, f"Firma {i} AS", NOW - minutes(70 - i)) for i in range(1, 8)]


def test_a_window_longer_than_an_invocation_continues_from_the_next_page_and_moves_the_watermark():
    state, outbox, visma, clock = memory_state(), FakeOutbox(), FakeVisma(seven_customers()), Clock(NOW)
    reports = until_complete(state, visma, outbox, clock)
    assert len(reports) >= 3 and all(r.stopped_early and r.continues for r in reports[:-1])
    assert [r.resumed for r in reports] == [False] + [True] * (len(reports) - 1)
    assert reports[-1].invocations == len(reports) and reports[-1].passes == 1  # one read, in several invocations
    assert sum(r.pages for r in reports) == 3  # each page read once: no invocation started the window again
    assert sorted(m.internal_id for m in outbox.sent) == list(range(1, 8))  # each sent once
    assert state.watermarks.get("c1", "customer") == NOW - minutes(63)
    assert state.windows.get("c1", "customer") is None  # the window closed


def test_the_watermark_never_passes_the_start_of_the_windows_first_read():
    records = [*seven_customers(), customer(8, "Late AS", NOW + minutes(2))]  # stamped while the window is open
    state, outbox, visma, clock = memory_state(), FakeOutbox(), FakeVisma(records), Clock(NOW)
    reports = until_complete(state, visma, outbox, clock)
    assert len(reports) >= 3 and clock.at > NOW + minutes(2)
    assert state.watermarks.get("c1", "customer") == NOW  # not the last invocation's start, not the newest stamp
    assert reports[-1].watermark_after == "2026-06-01T12:00:00.000000Z"


def test_records_changed_while_the_window_spans_invocations_are_not_lost():
    state, outbox, visma, clock = memory_state(), FakeOutbox(), FakeVisma(seven_customers()), Clock(NOW)
    invoke(state, visma, outbox, clock)  # reads page 1: customers 1-3
    clock.at += minutes(1)
    # Between invocations: customer 2 (already read) is edited, which moves it to the end and shifts customer 4
    # back onto page 1, which the window has read; a new customer is created.
    visma.put(customer(2, "Edited between invocations AS", clock.at - timedelta(seconds=30)))
    visma.put(customer(9, "Created between invocations AS", clock.at - timedelta(seconds=20)))
    until_complete(state, visma, outbox, clock, deadline=None)
    write(state, FakeMarketo(), outbox.inbound())
    until_complete(state, visma, outbox, clock, deadline=None)  # the next window
    latest = {m.internal_id: m.fields["company"] for m in outbox.sent}
    assert latest == {**{i: f"Firma {i} AS" for i in range(1, 8)}, 2: "Edited between invocations AS",
                      9: "Created between invocations AS"}


class ShuffledTies(FakeVisma):
    """Rows sharing a ``lastModifiedDateTime`` come in a different order on every request (Visma's order is
    unconfirmed), so offset pages over them overlap and skip."""

    def __init__(self, records: list[dict[str, Any]], seed: int = 7) -> None:
        super().__init__(records)
        self._random = random.Random(seed)

    def _window(self, since: datetime | None) -> list[dict[str, Any]]:
        rows = super()._window(since)
        order = {r["internalId"]: self._random.random() for r in rows}
        return sorted(rows, key=lambda r: (r["lastModifiedDateTime"], order[r["internalId"]]))


TIES = [customer(i, f"Tie {i} AS", NOW - minutes(30)) for i in range(1, 151)]
PAGES_OF_100 = CONNECTION.model_copy(update={"visma": CONNECTION.visma.model_copy(update={"page_size": 100})})


def test_150_rows_sharing_a_stamp_in_a_different_order_per_request_still_complete_and_move_the_watermark():
    state, outbox, visma = memory_state(), FakeOutbox(), ShuffledTies(TIES)
    clock = Clock(NOW)
    reports = until_complete(state, visma, outbox, clock, step=minutes(15), limit=3, deadline=None,
                             connection=PAGES_OF_100)  # at most three schedule ticks
    assert reports[-1].passes >= 2  # no single read covered the window (see the log): the passes together did
    assert state.watermarks.get("c1", "customer") == NOW - minutes(30)
    assert {m.internal_id for m in outbox.sent} == set(range(1, 151))
    assert len(outbox.sent) == 150  # passes and ticks of one window send each record once


def test_ties_do_not_prove_a_window_a_row_entered_while_it_was_open():
    # The union of passes proves nothing once a row entered the window (a deleted row read earlier could stand
    # in for a row never read): the window is proven by a read of its own, as before.
    state, outbox = memory_state(), FakeOutbox()
    visma = ShuffledTies([*TIES, customer(151, "Fresh AS", NOW - timedelta(seconds=10))])
    report = invoke(state, visma, outbox, Clock(NOW), deadline=None, connection=PAGES_OF_100)
    assert not report.complete and report.passes == 3 and report.checkpointed and not report.continues
    assert state.watermarks.get("c1", "customer") is None


class Observer:
    """Reconcile's side of the contract, recorded."""

    def __init__(self, due: bool = True, drift: Iterable[int] = ()) -> None:
        self.due, self.drift = due, set(drift)
        self.asked: list[datetime] = []
        self.pages: list[list[int]] = []
        self.completed: list[tuple[list[int], datetime]] = []

    def full_read_due(self, connection: ConnectionConfig, entity: VismaEntity, now: datetime) -> bool:
        self.asked.append(now)
        return self.due

    def drifted(self, connection: ConnectionConfig, entity: VismaEntity, messages: Sequence[SyncMessage]) -> set[int]:
        self.pages.append([m.internal_id for m in messages])
        return self.drift & {m.internal_id for m in messages}

    def full_read_complete(self, connection: ConnectionConfig, entity: VismaEntity, seen_ids: Iterable[int],
                           started: datetime) -> dict[str, int]:
        self.completed.append((sorted(seen_ids), started))
        return {"deleted": 1}


def test_a_full_read_spans_invocations_forces_drifted_records_and_reports_every_id_it_saw():
    state, outbox, visma, clock = memory_state(), FakeOutbox(), FakeVisma(seven_customers()), Clock(NOW)
    until_complete(state, visma, outbox, clock, deadline=None)
    write(state, FakeMarketo(), outbox.inbound())
    outbox.sent.clear()
    visma.put({"internalId": 99, "lastModifiedDateTime": "garbage"})  # quarantined, but it exists in Visma
    observer = Observer(drift=[2])
    clock.at = NOW + minutes(30)
    reports = until_complete(state, visma, outbox, clock, full_reads=observer)
    assert len(reports) >= 3 and all(r.full_read for r in reports)
    assert observer.asked == [NOW + minutes(30)]  # asked when the window started, never when it continued
    assert visma.since_asked[-len(reports):] == [None] * len(reports)  # everything, in every invocation
    assert sum(observer.pages, []) == list(range(1, 8))  # every page, with its candidates
    assert [m.internal_id for m in outbox.sent] == [2]  # Marketo holds them all; 2 drifted there
    assert observer.completed == [([*range(1, 8), 99], NOW + minutes(30))]
    assert reports[-1].reconcile == {"deleted": 1}


def test_a_window_not_due_for_a_full_read_reads_from_the_watermark_and_reports_nothing():
    state, outbox, visma, clock = memory_state(), FakeOutbox(), FakeVisma(seven_customers()), Clock(NOW)
    until_complete(state, visma, outbox, clock, deadline=None)
    observer = Observer(due=False, drift=[2])
    report = invoke(state, visma, outbox, clock, deadline=None, full_reads=observer)
    assert report.complete and not report.full_read and visma.since_asked[-1] is not None
    assert observer.pages == [] and observer.completed == []


def test_an_open_window_whose_watermark_moved_is_read_afresh():
    state, outbox, visma, clock = memory_state(), FakeOutbox(), FakeVisma(seven_customers()), Clock(NOW)
    invoke(state, visma, outbox, clock)
    state.watermarks.advance("c1", "customer", NOW - minutes(64), {})  # e.g. another poll completed a window
    report = invoke(state, visma, outbox, clock, deadline=None)
    assert not report.resumed and report.complete and report.pages == 3


class Balances:
    """``/v1/customer/balance`` over a FakeVisma's customers (the delta filter by lastModified); no invoices."""

    def __init__(self, visma: FakeVisma) -> None:
        self.visma = visma
        self.rows: dict[int, tuple[float, datetime]] = {}

    def records(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000):  # type: ignore[no-untyped-def]
        since = (params or {}).get("lastModifiedDateTime")
        for internal_id, (balance, modified) in self.rows.items():
            if path == "/v1/customer/balance" and (since is None or visma_stamp(modified) >= str(since)[:23]):
                yield {"customer": {"internalId": internal_id, "number": self.visma.records[internal_id]["number"]},
                       "balance": balance}


def test_payment_refreshes_after_the_window_continue_across_invocations_until_done():
    state, outbox, clock = memory_state(), FakeOutbox(), Clock(NOW)
    visma = FakeVisma([customer(i, f"Firma {i} AS", NOW - timedelta(days=2, hours=i)) for i in range(1, 8)])
    balances = Balances(visma)
    payments = PaymentReader(balances)  # type: ignore[arg-type]

    def invocation(deadline: Deadline | None) -> EntityPollReport:
        poller = Poller(state, QueueSink(state, outbox), clock=clock, safety_margin=5,
                        **({"deadline": deadline} if deadline else {}))
        return poller.poll_entity(CONNECTION, visma, "customer", company_id="1", mapping=customer_mapping(),
                                  payments=payments)

    invocation(None)
    write(state, FakeMarketo(), outbox.inbound())
    outbox.sent.clear()
    clock.at += minutes(15)
    for internal_id in (2, 4, 6):  # balances change; the customers themselves do not (not in the next window)
        balances.rows[internal_id] = (100.0 * internal_id, clock.at - minutes(1))
    reports = []
    while not reports or not reports[-1].complete:  # each invocation has time for one customer fetch
        assert len(reports) < 8, [r.payment_refreshes for r in reports]
        reports.append(invocation(ONE_PAGE))
        clock.at += timedelta(seconds=10)
    assert sum(r.payment_refreshes for r in reports) == 3  # each refreshed once, across invocations
    assert sorted((m.internal_id, m.fields["vismaBalance"]) for m in outbox.sent) == [(2, 200.0), (4, 400.0),
                                                                                       (6, 600.0)]
    assert {i: v["balance"] for i, v in state.payments.all("c1")} == {2: 200.0, 4: 400.0, 6: 600.0}


class CountingBalances(Balances):
    """Counts every list Visma is asked for (balances, overdue invoices)."""

    def __init__(self, visma: FakeVisma) -> None:
        super().__init__(visma)
        self.reads: dict[str, int] = {}

    def records(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000):  # type: ignore[no-untyped-def]
        self.reads[path] = self.reads.get(path, 0) + 1
        return super().records(path, params, page_size)


def test_the_payment_preload_is_read_once_for_a_window_that_spans_invocations():
    """On a large first load the overdue invoices and every balance can take a whole invocation: a continuation
    takes them from the window's checkpoint instead of reading them again (it would never finish otherwise)."""
    state, outbox, clock = memory_state(), FakeOutbox(), Clock(NOW)
    visma = FakeVisma(seven_customers())
    balances = CountingBalances(visma)
    balances.rows = {i: (10.0 * i, NOW - minutes(80)) for i in range(1, 8)}
    payments = PaymentReader(balances)  # type: ignore[arg-type]
    reports: list[EntityPollReport] = []
    while not reports or not reports[-1].complete:
        assert len(reports) < 8
        poller = Poller(state, QueueSink(state, outbox), clock=clock, safety_margin=5, deadline=ONE_PAGE)
        reports.append(poller.poll_entity(CONNECTION, visma, "customer", company_id="1", mapping=customer_mapping(),
                                          payments=payments))
        clock.at += minutes(1)
    assert len(reports) >= 3 and all(r.resumed for r in reports[1:])
    assert balances.reads == {"/v1/customerinvoice": 1, "/v1/customer/balance": 1}  # the first invocation only
    assert sorted((m.internal_id, m.fields["vismaBalance"]) for m in outbox.sent) == [
        (i, 10.0 * i) for i in range(1, 8)]  # every continuation mapped the balances its first invocation read
