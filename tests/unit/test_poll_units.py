"""What a poll costs in DynamoDB request units (counted as AWS bills them, on moto): its fixed per-poll items are
read and written once each, and no read grows with the history a connection keeps (job outcomes, runs, parked
chunks sent again, repairs done, quarantine entries released)."""

from __future__ import annotations

from datetime import datetime

import pytest
from moto_tables import Tables
from sync_fakes import CONNECTION, NOW, FakeOutbox, FakeVisma, customer, customer_mapping, minutes
from test_window_checkpoint import full_load

from ml_connector.state import JobRecord, QuarantineEntry, RepairEntry, RunRecord, State, utc_iso
from ml_connector.sync.deferred_chunks import DeferredChunks
from ml_connector.sync.poller import EntityPollReport, Poller, QueueSink


@pytest.fixture
def state(memory_or_dynamodb_state: State) -> State:
    return memory_or_dynamodb_state


def _poll(state: State, visma: FakeVisma, at: datetime = NOW) -> EntityPollReport:
    poller = Poller(state, QueueSink(state, FakeOutbox()), clock=lambda: at, safety_margin=5)
    report = poller.poll_entity(CONNECTION, visma, "customer", company_id="1", mapping=customer_mapping())
    assert report.complete
    return report


# -- the watermark item: one write per complete poll, forward only ---------------------------------------------

def test_a_complete_poll_records_watermark_poll_and_sweep_each_forward_only(state):
    state.watermarks.complete("c1", "customer", NOW, NOW - minutes(5), swept=True, summary={"n": 1})
    entry = state.watermarks.entry("c1", "customer")
    assert entry is not None and entry.last_cycle == {"n": 1}
    assert (entry.watermark, entry.polled_at, entry.swept_at) == (utc_iso(NOW - minutes(5)), utc_iso(NOW), utc_iso(NOW))
    assert state.sweeps.last("c1", "customer") == NOW
    # An older poll that finishes late moves only what it has newer: here the watermark.
    state.watermarks.complete("c1", "customer", NOW - minutes(10), NOW - minutes(1), swept=True, summary={})
    entry = state.watermarks.entry("c1", "customer")
    assert entry is not None
    assert (entry.watermark, entry.polled_at, entry.swept_at) == (utc_iso(NOW - minutes(1)), utc_iso(NOW), utc_iso(NOW))
    state.watermarks.complete("c1", "customer", NOW + minutes(15), None, swept=False, summary={})  # nothing read
    entry = state.watermarks.entry("c1", "customer")
    assert entry is not None and entry.polled_at == utc_iso(NOW + minutes(15))
    assert entry.watermark == utc_iso(NOW - minutes(1)) and state.sweeps.last("c1", "customer") == NOW


def test_a_poll_writes_its_watermark_item_once_and_reads_its_fixed_items_at_half_price(tables):
    """A deep poll (the first) and a normal one: one write of the WM# item each (watermark, poll and sweep
    together; no SWEEP# item), one eventually consistent read of it, and nothing quarantined costs one small
    read of the index (the entries are read once, to index those from before the index)."""
    state = tables.state()
    visma = FakeVisma([customer(i, f"Kunde {i}", NOW - minutes(30)) for i in range(1, 4)])
    with tables.metered() as first:
        assert _poll(state, visma).deep_sweep
    visma.put(customer(2, "Kunde 2 AS", NOW + minutes(10)))
    with tables.metered() as second:
        assert not _poll(state, visma, NOW + minutes(15)).deep_sweep
    for spent in (first, second):
        assert spent["write"]["WM"] == 1
        assert "SWEEP" not in spent["write"] and "SWEEP" not in spent["read"]
    assert second["read"]["WM"] == 0.5
    assert second["read"]["QIDX"] == 0.5 and "QUAR" not in second["read"]


def test_the_quarantine_entries_from_before_the_index_are_indexed_once(tables):
    table = tables.table()
    state = tables.state(table)
    entry = QuarantineEntry(connection="c1", entity="customer", ref="7", stage="poller", reason="bad", raw="{}",
                            at=utc_iso(NOW))
    state.quarantine.put(entry)
    table.delete_many([{"pk": "QIDX#c1", "sk": "customer#7"}])  # as a version without the index left it
    with tables.metered() as first:
        assert set(state.quarantine.index("c1")) == {"customer#7"}
    with tables.metered() as second:
        assert set(state.quarantine.index("c1")) == {"customer#7"}
    assert first["read"]["QUAR"] > 0 and "QUAR" not in second["read"]


# -- nothing a poll reads grows with the history kept -----------------------------------------------------------

def _keep_history(state: State, n: int) -> None:
    """What weeks of polls leave behind: job outcomes and runs (kept until their TTL), chunks parked and sent again,
    repairs done, quarantine entries released."""
    for i in range(n):
        job = JobRecord(connection="c1", job_id=f"job-{i:05d}", marketo_object="companies", status="done",
                        records=300, at=utc_iso(NOW))
        state.jobs.put(job)
        state.runs.record(RunRecord(connection="c1", started=utc_iso(NOW - minutes(15 * (i + 1))),
                                    finished=utc_iso(NOW), records_read=300, messages_sent=300))
        state.jobs.park(job.model_copy(update={"job_id": f"parked-{i:05d}"}))
        state.jobs.unpark("c1", f"parked-{i:05d}")
        state.quarantine.put(QuarantineEntry(connection="c1", entity="customer", ref=str(10_000 + i), stage="poller",
                                             reason="bad", raw="{}" * 200, at=utc_iso(NOW)))
        state.quarantine.release("c1", "customer", str(10_000 + i))
    state.records.flag_for_repair("c1", [RepairEntry(entity="customer", internal_id=20_000 + i, number=f"C{i}")
                                         for i in range(n)])
    state.records.repaired("c1", "customer", [20_000 + i for i in range(n)])


def _poll_reads(tables: Tables, history: int) -> dict[str, float]:
    state = tables.state()
    visma = FakeVisma([customer(i, f"Kunde {i}", NOW - minutes(30)) for i in range(1, 4)])
    _poll(state, visma)
    _keep_history(state, history)
    visma.put(customer(2, "Kunde 2 AS", NOW + minutes(10)))
    with tables.metered() as spent:
        DeferredChunks(state, clock=lambda: NOW + minutes(15)).requeue_due(["c1"], FakeOutbox())
        _poll(state, visma, NOW + minutes(15))
    return spent["read"]


def test_a_polls_reads_do_not_grow_with_the_history_kept(tables):
    assert _poll_reads(tables, 60) == _poll_reads(tables, 0)


def test_a_sweep_recorded_before_the_sweep_time_moved_to_the_watermark_item_still_counts(tables):
    """An entity polled by a version that kept the sweep time in a SWEEP# item: it is read from there until the
    next deep sweep writes it on the WM# item (so an upgrade does not make every entity sweep at once)."""
    table = tables.table()
    state = tables.state(table)
    state.watermarks.advance("c1", "customer", NOW - minutes(30), {})
    table.put({"pk": "SWEEP#c1", "sk": "customer", "at": utc_iso(NOW - minutes(20))})
    entry = state.watermarks.entry("c1", "customer")
    assert entry is not None and entry.swept_at == utc_iso(NOW - minutes(20))
    visma = FakeVisma([customer(1, "Kunde 1", NOW - minutes(30))])
    assert not _poll(state, visma).deep_sweep  # swept 20 minutes ago: within the hour


def test_a_continuation_asks_whether_a_window_is_open_without_reading_its_id_sets(state, request):
    """A continuation polls only the entities with an open window: asking costs the meta item's read, not the
    parts' (a 100k first load's checkpoint is several 4 KB units, read again when the window is continued)."""
    checkpoint = full_load(100_000)
    assert not state.windows.is_open("c1", "customer")
    state.windows.save("c1", "customer", checkpoint)
    if "dynamodb" in request.node.name:
        tables = request.getfixturevalue("tables")
        with tables.metered() as asking:
            assert state.windows.is_open("c1", "customer")
        with tables.metered() as reading:
            assert state.windows.get("c1", "customer") is not None
        assert asking["read"] == {"WIN": 1.0} and reading["read"]["WIN"] > 10
    assert state.windows.is_open("c1", "customer") and not state.windows.is_open("c1", "supplier")
    state.windows.delete("c1", "customer")
    assert not state.windows.is_open("c1", "customer")
