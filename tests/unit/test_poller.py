"""The poller on in-memory state and a fake Visma: window completeness, re-reads, watermark rules,
quarantine and its release, the deadline. No moto, no HTTP."""

from __future__ import annotations

import json

from sync_fakes import CONNECTION, NOW, FakeMarketo, FakeOutbox, FakeVisma, customer, customer_mapping, minutes, write

from ml_connector.deadline import Deadline
from ml_connector.state import State
from ml_connector.state.memory import memory_state
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink


def poll(state: State, visma: FakeVisma, outbox: FakeOutbox, deadline: Deadline | None = None) -> EntityPollReport:
    poller = Poller(state, QueueSink(state, outbox), clock=lambda: NOW, safety_margin=5,
                    **({"deadline": deadline} if deadline else {}))
    return poller.poll_entity(CONNECTION, visma, "customer", company_id="1", mapping=customer_mapping())


def seven_customers() -> list[dict]:
    return [customer(i, f"Firma {i} AS", NOW - minutes(70 - i)) for i in range(1, 8)]


def test_full_load_sends_every_record_and_moves_the_watermark_to_the_newest_seen():
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(seven_customers())
    report = poll(state, visma, outbox)
    assert report.complete and report.passes == 1 and report.pages == 3
    assert sorted(m.internal_id for m in outbox.sent) == list(range(1, 8))
    assert state.watermarks.get("c1", "customer") == NOW - minutes(63)


def test_next_poll_reads_from_watermark_minus_overlap_and_sends_nothing_marketo_holds():
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(seven_customers())
    poll(state, visma, outbox)
    write(state, FakeMarketo(), outbox.inbound())
    outbox.sent.clear()
    report = poll(state, visma, outbox)
    assert visma.since_asked[-1] == NOW - minutes(63) - minutes(5)  # overlap_seconds 300
    assert report.messages_sent == 0 and report.already_in_marketo == report.records_read > 0


def test_a_record_read_again_before_it_was_written_is_sent_again():
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(seven_customers())
    poll(state, visma, outbox)
    outbox.sent.clear()
    report = poll(state, visma, outbox)  # nothing written yet: the writer keeps one version of each
    assert report.already_in_marketo == 0 and report.messages_sent == report.records_read > 0


def test_an_edited_record_is_sent_again_with_its_new_version():
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(seven_customers())
    poll(state, visma, outbox)
    write(state, FakeMarketo(), outbox.inbound())
    outbox.sent.clear()
    visma.put(customer(3, "Renamed AS", NOW - minutes(1)))
    poll(state, visma, outbox)
    assert [(m.internal_id, m.fields["company"]) for m in outbox.sent] == [(3, "Renamed AS")]
    assert state.watermarks.get("c1", "customer") == NOW - minutes(1)


def test_watermark_never_passes_the_start_of_the_poll():
    state, outbox = memory_state(), FakeOutbox()
    visma = FakeVisma([customer(1, "Future AS", NOW + minutes(30))])  # a Visma clock ahead of ours
    poll(state, visma, outbox)
    assert state.watermarks.get("c1", "customer") == NOW


def test_rows_shifting_between_pages_make_the_window_read_again_until_complete():
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(seven_customers())

    def edit_a_served_row(page: int) -> None:
        if page == 1 and len(visma.since_asked) == 1:  # during the first pass only
            visma.put(customer(1, "Edited while paging AS", NOW - minutes(2)))

    visma.between_pages = edit_a_served_row
    report = poll(state, visma, outbox)
    # Pass 2 finds row 4, which pass 1 skipped, while a row that entered during pass 1 is still fresh: a third
    # read confirms that pass 2 skipped nothing.
    assert report.passes == 3 and report.complete
    assert {m.internal_id for m in outbox.sent} == set(range(1, 8))  # row 4 was skipped by pass 1, not lost
    assert state.watermarks.get("c1", "customer") == NOW - minutes(2)


def test_a_window_never_proven_complete_does_not_move_the_watermark():
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(seven_customers())
    edits = iter(range(100))

    def keep_shifting(page: int) -> None:
        if page == 1:
            visma.put(customer(1 + next(edits) % 3, "Busy AS", NOW - minutes(1)))

    visma.between_pages = keep_shifting
    report = poll(state, visma, outbox)
    assert report.passes == 3 and not report.complete
    assert state.watermarks.get("c1", "customer") is None


def test_a_malformed_record_is_quarantined_with_its_reason_and_released_once_fixed():
    records = seven_customers()
    records[2] = {**records[2], "name": 42}
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(records)
    report = poll(state, visma, outbox)
    assert report.quarantined == 1 and report.complete and len(outbox.sent) == 6
    [entry] = state.quarantine.entries("c1")
    assert entry.ref == "3" and entry.stage == "poller" and "name" in entry.reason
    visma.put(customer(3, "Fixed AS", NOW - minutes(1)))
    poll(state, visma, outbox)
    assert state.quarantine.entries("c1") == []
    assert outbox.sent[-1].fields["company"] == "Fixed AS"


def test_a_poll_short_of_time_stops_cleanly_without_moving_the_watermark():
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(seven_customers())
    report = poll(state, visma, outbox, deadline=Deadline(lambda: 4.0))  # under the 5 s margin
    assert report.stopped_early and not report.complete
    assert state.watermarks.get("c1", "customer") is None
    report = poll(state, visma, outbox)  # the next invocation reads the window again
    assert report.complete and {m.internal_id for m in outbox.sent} == set(range(1, 8))


def test_a_quarantined_customer_retried_keeps_its_stored_payment_facts():
    from ml_connector.state import QuarantineEntry
    from ml_connector.sync.poller import EntityContext
    from ml_connector.usecases.retry_quarantine import rebuild_message

    state = memory_state()
    state.payments.put("c1", [(7, {"number": "C7", "balance": 1200.0, "overdue_amount": 800.0,
                                   "overdue_invoices": 2, "max_dunning_level": 0})])
    raw = customer(7, "Skyldig AS", NOW - minutes(3))
    entry = QuarantineEntry(connection="c1", entity="customer", ref="7", stage="poller", reason="was invalid",
                            raw=json.dumps(raw), at="2026-06-01T00:00:00.000000Z")
    message = rebuild_message(entry, state, EntityContext(CONNECTION, "customer", "1", customer_mapping()))
    assert message.fields["vismaBalance"] == 1200.0
    assert message.fields["vismaPaymentStatus"] == "overdue"


def test_a_record_too_big_for_sqs_is_quarantined_and_never_blocks_the_window():
    records = seven_customers()
    records[4] = {**records[4], "mainAddress": {"addressLine1": "Storgata " + "x" * 300_000}}
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(records)
    report = poll(state, visma, outbox)
    assert report.complete and report.quarantined == 1 and len(outbox.sent) == 6
    [entry] = state.quarantine.entries("c1")
    assert entry.ref == "5" and "over SQS's 262144-byte limit" in entry.reason
    assert state.watermarks.get("c1", "customer") == NOW - minutes(63)
    report = poll(state, visma, outbox)  # still too big: it stays quarantined, not released
    assert [e.ref for e in state.quarantine.entries("c1")] == ["5"]


def test_customer_numbers_are_kept_only_where_contacts_need_them():
    for needed in (False, True):
        state, outbox = memory_state(), FakeOutbox()
        sink = QueueSink(state, outbox, remember_numbers=lambda _connection, needed=needed: needed)
        Poller(state, sink, clock=lambda: NOW).poll_entity(
            CONNECTION, FakeVisma(seven_customers()), "customer", company_id="1", mapping=customer_mapping())
        assert len(outbox.sent) == 7
        assert state.numbers.internal_ids("c1", "customer", ["C1", "C7"]) == ({"C1": 1, "C7": 7} if needed else {})
