"""Two writers holding two versions of one record, their Marketo calls overlapping so that the older
version lands last: Marketo must still end on the newest version (one poll later). The interleavings are
forced with gates inside the fake Marketo call, so each is certain, not a matter of timing."""

from __future__ import annotations

import threading
import time
from typing import Any

from sync_fakes import NOW, FakeMarketo, FakeVisma, customer, minutes, poll_into, queued, write

from ml_connector.state import State
from ml_connector.state.memory import memory_state
from ml_connector.sync.writer import InboundMessage

KEY = "visma-1-customer-1"


def two_versions(state: State) -> tuple[FakeVisma, list[InboundMessage], list[InboundMessage]]:
    visma = FakeVisma([customer(1, "Old AS", NOW - minutes(10))])
    old = queued(state, visma)
    visma.put(customer(1, "New AS", NOW - minutes(1)))
    new = queued(state, visma)
    return visma, old, new


class Gate:
    def __init__(self) -> None:
        self.entered, self.go = threading.Event(), threading.Event()

    def hold(self) -> None:
        self.entered.set()
        assert self.go.wait(10)


def holding(name: str, gate: Gate) -> Any:
    return lambda records: gate.hold() if records[0]["company"] == name else None


def in_thread(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target)
    thread.start()
    return thread


def test_older_write_landing_after_a_newer_recorded_one_is_repaired_by_the_next_poll():
    state, marketo = memory_state(), FakeMarketo()
    visma, old, new = two_versions(state)
    slow_old = Gate()
    marketo.before_apply = holding("Old AS", slow_old)  # the older call is slow: it lands last
    writer_a = in_thread(lambda: write(state, marketo, old))
    assert slow_old.entered.wait(10)  # A read the state (nothing written yet) and is in its Marketo call
    write(state, marketo, new)  # B writes the newer version and records it
    slow_old.go.set()
    writer_a.join()
    assert marketo.companies[KEY]["company"] == "Old AS"  # the hazard: the older version landed last
    assert [r.internal_id for r in state.records.repairs("c1", "customer")] == [1]

    report, queue = poll_into(state, visma)
    resent = queue.inbound()
    assert report.repairs == 1 and len(resent) == 1
    write(state, marketo, resent)
    assert marketo.companies[KEY]["company"] == "New AS"
    assert state.records.repairs("c1", "customer") == []


def test_older_write_recorded_before_the_newer_one_is_also_repaired():
    state, marketo = memory_state(), FakeMarketo()
    visma, old, new = two_versions(state)
    slow_old, slow_new_record = Gate(), Gate()
    marketo.before_apply = holding("Old AS", slow_old)
    marketo.after_apply = holding("New AS", slow_new_record)  # B applied, but records only later
    writer_a = in_thread(lambda: write(state, marketo, old))
    assert slow_old.entered.wait(10)
    writer_b = in_thread(lambda: write(state, marketo, new))
    assert slow_new_record.entered.wait(10)  # B's newer version is in Marketo, not yet recorded
    slow_old.go.set()
    writer_a.join()  # A's older version lands last and is recorded first: its condition holds
    slow_new_record.go.set()
    writer_b.join()
    assert marketo.companies[KEY]["company"] == "Old AS"
    assert state.records.get("c1", "customer", [1])[1].written_version is not None
    assert [r.internal_id for r in state.records.repairs("c1", "customer")] == [1]

    resent = queued(state, visma)
    write(state, marketo, resent)
    assert marketo.companies[KEY]["company"] == "New AS"


def test_writes_that_did_not_overlap_need_no_repair():
    state, marketo = memory_state(), FakeMarketo()
    visma, old, new = two_versions(state)
    write(state, marketo, old)
    time.sleep(0.2)  # past the clock margin: B's call starts after A's write was recorded
    write(state, marketo, new)
    assert marketo.companies[KEY]["company"] == "New AS"
    assert state.records.repairs("c1", "customer") == []
    report, queue = poll_into(state, visma)
    resent = queue.inbound()
    assert report.repairs == 0 and resent == []
