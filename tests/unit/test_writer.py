"""The writer on in-memory state and a fake Marketo: chunking by count and bytes, the version guard,
the unchanged-content skip, per-record refusals to quarantine and their release, quota deferral and
requeue. No moto, no HTTP."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sync_fakes import NOW, FakeMarketo, FakeOutbox, FakeVisma, customer, minutes, queued, write

from ml_connector.deadline import Deadline
from ml_connector.state.memory import memory_state
from ml_connector.sync.deferred_chunks import DeferredChunks
from ml_connector.sync.writer import InboundMessage


def customers(count: int, name: str = "Firma", **extra) -> list[dict]:
    return [customer(i, f"{name} {i}", NOW - minutes(60) + timedelta(seconds=i), **extra)
            for i in range(1, count + 1)]


def test_chunks_hold_at_most_300_records():
    state, marketo = memory_state(), FakeMarketo()
    report = write(state, marketo, queued(state, FakeVisma(customers(650))))
    assert sorted(marketo.calls, reverse=True) == [300, 300, 50]  # written side by side
    assert report.created == 650 and not report.failed_message_ids


def test_chunks_stay_under_one_megabyte():
    state, marketo = memory_state(), FakeMarketo()
    long_street = {"addressLine1": "Åsveien " + "ø" * 2000}  # about 4 KB a record: 300 of them pass 1 MB
    report = write(state, marketo, queued(state, FakeVisma(customers(300, mainAddress=long_street))))
    assert len(marketo.calls) >= 2 and sum(marketo.calls) == 300
    assert report.created == 300


def test_a_redelivered_message_with_unchanged_content_costs_no_call():
    state, marketo = memory_state(), FakeMarketo()
    inbound = queued(state, FakeVisma(customers(5)))
    write(state, marketo, inbound)
    report = write(state, marketo, [InboundMessage(f"again-{m.message_id}", m.body) for m in inbound])
    assert report.unchanged == 5 and len(marketo.calls) == 1


def test_an_older_version_never_overwrites_a_newer_one():
    state, marketo = memory_state(), FakeMarketo()
    visma = FakeVisma(customers(1))
    old = queued(state, visma)
    visma.put(customer(1, "Newer AS", NOW - minutes(1)))
    new = queued(state, visma)
    write(state, marketo, new)
    report = write(state, marketo, old)  # the older version arrives late (SQS is unordered)
    assert report.stale == 1 and len(marketo.calls) == 1
    assert next(iter(marketo.companies.values()))["company"] == "Newer AS"


def test_of_two_versions_in_one_batch_only_the_newest_is_written():
    state, marketo = memory_state(), FakeMarketo()
    visma = FakeVisma(customers(1))
    old = queued(state, visma)
    visma.put(customer(1, "Newer AS", NOW - minutes(1)))
    new = queued(state, visma)
    report = write(state, marketo, [*new, *[InboundMessage("old", m.body) for m in old]])
    assert report.superseded == 1 and marketo.calls == [1]
    assert next(iter(marketo.companies.values()))["company"] == "Newer AS"


def test_a_refused_record_is_quarantined_and_a_later_accepted_version_releases_it():
    state, marketo = memory_state(), FakeMarketo()
    visma = FakeVisma(customers(3))
    first = queued(state, visma)
    refused_key = "visma-1-customer-2"
    marketo.refuse[refused_key] = "Invalid value for numberOfEmployees"
    report = write(state, marketo, first)
    assert report.skipped == 1 and report.created == 2 and not report.failed_message_ids
    [entry] = state.quarantine.entries("c1")
    assert entry.ref == "2" and entry.stage == "writer" and "1003: Invalid value" in entry.reason
    marketo.refuse.clear()
    visma.put(customer(2, "Fixed AS", NOW - minutes(1)))
    write(state, marketo, queued(state, visma))
    assert state.quarantine.entries("c1") == []
    assert marketo.companies[refused_key]["company"] == "Fixed AS"


def test_quota_used_up_parks_chunks_and_the_poll_cycle_sends_them_again_after_the_reset():
    state, marketo = memory_state(), FakeMarketo()
    marketo.quota_after = 1  # the second call answers 607
    report = write(state, marketo, queued(state, FakeVisma(customers(650))))
    assert marketo.calls == [300] and report.quota_exhausted
    assert report.deferred == 350 and not report.failed_message_ids  # parked, not retried by SQS
    deferred = DeferredChunks(state)
    assert deferred.blocked_until("123-ABC-456") is not None
    later = write(state, marketo, queued(state, FakeVisma([customer(900, "New AS", NOW)])))
    assert later.deferred == 1 and marketo.calls == [300]  # blocked: deferred without a call
    outbox = FakeOutbox()
    assert deferred.requeue_due(["c1"], outbox) == 0  # before the reset: nothing yet
    after_reset = DeferredChunks(state, clock=lambda: datetime.now(UTC) + timedelta(days=2))
    assert after_reset.requeue_due(["c1"], outbox) == 351
    state.quota.block("123-ABC-456", datetime(2000, 1, 1, tzinfo=UTC))  # the reset has passed
    marketo.quota_after = None
    report = write(state, marketo, outbox.inbound())
    assert report.created == 351 and sum(marketo.calls) == 651
    assert after_reset.requeue_due(["c1"], FakeOutbox()) == 0  # each parked chunk is sent once


def test_a_writer_short_of_time_hands_the_rest_back_to_the_queue():
    state, marketo = memory_state(), FakeMarketo()
    inbound = queued(state, FakeVisma(customers(10)))
    report = write(state, marketo, inbound, deadline=Deadline(lambda: 1.0))
    assert marketo.calls == [] and report.failed_message_ids == {m.message_id for m in inbound}


def test_a_message_naming_another_marketo_object_than_its_mapping_is_quarantined_not_sent():
    state, marketo = memory_state(), FakeMarketo()
    [good] = queued(state, FakeVisma(customers(1)))
    forged = json.loads(good.body) | {"marketo_object": "../leads/delete", "internal_id": 99}
    report = write(state, marketo, [good, InboundMessage("forged", json.dumps(forged))])
    assert report.invalid == 1 and report.created == 1 and marketo.calls == [1]
    [entry] = state.quarantine.entries("_unknown")
    assert entry.ref == "forged" and "goes to ('companies', 'externalCompanyId') by its mapping" in entry.reason


def test_looking_for_parked_chunks_reads_only_parked_ones_however_long_the_history():
    state, marketo = memory_state(), FakeMarketo()
    for n in range(30):  # a long history of written chunks
        write(state, marketo, queued(state, FakeVisma([customer(1000 + n, f"Firma {n}", NOW - minutes(50 - n))])))
    marketo.quota_after = len(marketo.calls)
    write(state, marketo, queued(state, FakeVisma([customer(1, "Parked AS", NOW)])))
    assert len(state.jobs.all("c1")) == 31
    assert [j.records for j in DeferredChunks(state).parked("c1")] == [1]  # the history is not read for this
    assert [j.message_ids for j in state.jobs.all("c1") if j.status == "done"][0] == []  # done jobs stay small
