"""Issue 15, no silent loss at the Visma boundary, on in-memory state and a fake Visma: a shift that keeps
the count, writes stamped earlier than the overlap, a renumbered customer's payment facts, naive stamps in a
local time zone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sync_fakes import CONNECTION, NOW, FakeMarketo, FakeOutbox, FakeVisma, customer, customer_mapping, minutes, write

from ml_connector.config import ConfigError, ConnectionConfig, load_settings
from ml_connector.state import State
from ml_connector.state.memory import memory_state
from ml_connector.sync.payment import PaymentReader
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink
from ml_connector.visma.models import format_visma_datetime, parse_visma_datetime


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def poll(state: State, visma: FakeVisma, outbox: FakeOutbox, *, clock: Clock | None = None,
         connection: ConnectionConfig = CONNECTION, balances: Balances | None = None) -> EntityPollReport:
    """One poll, then the writers drain what it sent (as between two schedule ticks): Marketo holds it."""
    poller = Poller(state, QueueSink(state, outbox), clock=clock or (lambda: NOW), safety_margin=5)
    report = poller.poll_entity(connection, visma, "customer", company_id="1", mapping=customer_mapping(),
                                payments=PaymentReader(balances) if balances else None)  # type: ignore[arg-type]
    if connection is CONNECTION:
        write(state, FakeMarketo(), outbox.inbound())
    return report


# -- 1. a shift that keeps the count ---------------------------------------------------------------
def test_a_served_row_deleted_while_another_enters_cannot_complete_a_window_with_a_row_missing():
    records = [customer(i, f"Firma {i} AS", NOW - minutes(70 - i)) for i in range(1, 8)]
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(records)
    poll(state, visma, outbox)  # watermark NOW - 63 min: the next window starts at NOW - 68 min
    for i in range(2, 8):  # six changed customers: a window of two pages of three
        visma.put(customer(i, f"Changed {i} AS", NOW - minutes(20 - i)))
    outbox.sent.clear()

    def shift_keeping_count(page: int) -> None:
        if page == 1 and len(visma.since_asked) == 2:  # during the first read of the window only
            del visma.records[3]  # served on page 1 ...
            visma.put(customer(1, "Entered AS", NOW - minutes(1)))  # ... and an old row enters at the end

    visma.between_pages = shift_keeping_count
    report = poll(state, visma, outbox)
    # Row 5 moved from page 2 onto page 1 after page 1 was served: the count (6) was still met by pass 1.
    assert report.complete
    assert {m.internal_id for m in outbox.sent} == {1, 2, 3, 4, 5, 6, 7}  # 3 was sent before its deletion
    assert report.passes == 3  # pass 2 found row 5 skipped; pass 3 confirmed pass 2 skipped nothing


def test_a_multi_page_window_without_rows_entering_is_read_once():
    records = [customer(i, f"Firma {i} AS", NOW - minutes(70 - i)) for i in range(1, 8)]
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(records)
    report = poll(state, visma, outbox)
    assert report.complete and report.passes == 1 and report.pages == 3


# -- 2. writes stamped earlier than the overlap ----------------------------------------------------------
def test_a_late_write_is_found_by_the_next_sweep_and_its_lateness_reported():
    clock = Clock(NOW)
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma([customer(1, "Firma AS", NOW - minutes(30))])
    assert poll(state, visma, outbox, clock=clock).deep_sweep  # a full read counts as a sweep
    clock.at = NOW + minutes(15)
    visma.put(customer(2, "Normal AS", NOW + minutes(14)))
    poll(state, visma, outbox, clock=clock)  # watermark now NOW + 14 min
    # Becomes visible now, stamped 50 minutes ago (a long transaction, a lagging app-server clock).
    visma.put(customer(3, "Late AS", NOW - minutes(20)))
    clock.at = NOW + minutes(30)
    normal = poll(state, visma, outbox, clock=clock)
    assert not normal.deep_sweep and 3 not in {m.internal_id for m in outbox.sent}
    clock.at = NOW + minutes(61)  # one sweep interval (3600 s) after the full read
    swept = poll(state, visma, outbox, clock=clock)
    assert swept.deep_sweep and visma.since_asked[-1] == NOW + minutes(61) - timedelta(hours=24)
    assert [m.internal_id for m in outbox.sent].count(3) == 1
    # How far before the normal window's start (watermark NOW + 14 min, less 5 min overlap) it was stamped.
    assert swept.late_writes == 1 and swept.late_write_seconds == (minutes(9) + minutes(20)).total_seconds()
    assert swept.messages_sent == 1  # the rest of the 24 hours was enqueued before: no message
    clock.at = NOW + minutes(75)
    assert not poll(state, visma, outbox, clock=clock).deep_sweep  # the next one is an interval later


# -- 3. a renumbered customer keeps its payment facts -------------------------------------------------------
class Balances:
    """``/v1/customer/balance`` over a FakeVisma's customers (the delta filter by lastModified); no invoices."""

    def __init__(self, visma: FakeVisma) -> None:
        self.visma = visma
        self.rows: dict[int, tuple[float, datetime]] = {}

    def records(self, path: str, params: dict[str, Any] | None = None, page_size: int = 1000):
        if path != "/v1/customer/balance":
            return
        since = (params or {}).get("lastModifiedDateTime")
        if isinstance(since, str):
            since = parse_visma_datetime(since)
        for internal_id, (balance, modified) in self.rows.items():
            if since is None or modified >= since:
                number = self.visma.records[internal_id]["number"]
                yield {"customer": {"internalId": internal_id, "number": number}, "balance": balance}


def test_a_renumbered_customer_keeps_its_balance_and_payment_status():
    state, outbox = memory_state(), FakeOutbox()
    visma = FakeVisma([customer(1, "Skuld AS", NOW - minutes(60)), customer(2, "Annen AS", NOW - minutes(60))])
    balances = Balances(visma)
    balances.rows[1] = (1250.0, NOW - minutes(120))  # older than any window after the first: never in the delta
    poll(state, visma, outbox, balances=balances)
    assert outbox.sent[0].fields["vismaBalance"] == 1250.0
    renumbered = customer(1, "Skuld AS", NOW - minutes(1))
    renumbered["number"] = "K-1001"  # changeCustomerCd: the record changes, its balance does not
    visma.put(renumbered)
    outbox.sent.clear()
    poll(state, visma, outbox, balances=balances)
    [sent] = outbox.sent
    assert (sent.number, sent.fields["vismaBalance"], sent.fields["vismaPaymentStatus"]) == (
        "K-1001", 1250.0, "open_balance")
    outbox.sent.clear()
    poll(state, visma, outbox, balances=balances)  # and later polls do not flip it back
    assert outbox.sent == []
    assert dict(state.payments.all("c1"))[1]["number"] == "K-1001"


# -- 5. naive stamps in the tenant's time zone -------------------------------------------------------------
def test_naive_stamps_are_read_and_filters_written_in_the_connection_time_zone():
    oslo = ZoneInfo("Europe/Oslo")
    assert parse_visma_datetime("2026-06-01T14:00:00", oslo) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert parse_visma_datetime("2026-06-01T14:00:00+02:00", oslo) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert format_visma_datetime(datetime(2026, 1, 15, 12, 0, tzinfo=UTC), oslo) == "2026-01-15T13:00:00.000"
    # 02:30 happens twice on 2026-10-25 in Oslo: the filter moves back an hour, so it never starts late.
    assert format_visma_datetime(datetime(2026, 10, 25, 0, 30, tzinfo=UTC), oslo) == "2026-10-25T01:30:00.000"


def test_poller_stamps_records_in_the_connection_time_zone():
    connection = CONNECTION.model_copy(update={"visma": CONNECTION.visma.model_copy(
        update={"time_zone": "Europe/Oslo"})})
    record = customer(1, "Lokal AS", NOW)  # served as 12:00 wall time, which in Oslo in June is 10:00 UTC
    state, outbox = memory_state(), FakeOutbox()
    poll(state, FakeVisma([record]), outbox, connection=connection)
    assert outbox.sent[0].modified_at == NOW - timedelta(hours=2)


def test_an_unknown_time_zone_fails_at_load_naming_the_field():
    env = {"STATE_TABLE": "t", "VISMA_SECRET_ID": "v", "MARKETO_SECRET_ID": "m", "MARKETO_MUNCHKIN_ID": "123-ABC-456",
           "VISMA_TIME_ZONE": "Europe/Atlantis"}
    with pytest.raises(ConfigError, match=r"connections\.0\.visma\.time_zone: .*unknown IANA time zone"):
        load_settings(env)
    assert load_settings({**env, "VISMA_TIME_ZONE": "Europe/Oslo"}).connections[0].visma.time_zone == "Europe/Oslo"
