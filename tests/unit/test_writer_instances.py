"""One writer invocation, a batch holding two connections on two Marketo instances: each instance is
written on its own, so one that waits (a slow call, its budget, its quota) does not hold the other back."""

from __future__ import annotations

import threading

from sync_fakes import CONNECTION, NOW, FakeMarketo, FakeOutbox, FakeVisma, customer, customer_mapping, minutes

from ml_connector.config import ConnectionConfig, RuntimeSettings
from ml_connector.state import State
from ml_connector.state.memory import memory_state
from ml_connector.sync.deferred_chunks import DeferredChunks
from ml_connector.sync.poller import Poller, QueueSink
from ml_connector.sync.writer import InboundMessage, Writer

SECOND = ConnectionConfig.model_validate({
    "id": "c2", "visma": {"secret_id": "v2"}, "marketo": {"secret_id": "m2", "munchkin_id": "456-DEF-789"}})
TWO = RuntimeSettings(state_table="t", connections=(CONNECTION, SECOND), safety_margin_seconds=5)


def queued_for(state: State, connection: ConnectionConfig, count: int) -> list[InboundMessage]:
    outbox = FakeOutbox()
    visma = FakeVisma([customer(i, f"{connection.id} firma {i}", NOW - minutes(5)) for i in range(1, count + 1)])
    Poller(state, QueueSink(state, outbox), clock=lambda: NOW).poll_entity(
        connection, visma, "customer", company_id="1", mapping=customer_mapping())
    return [InboundMessage(f"{connection.id}-{i}", m.model_dump_json()) for i, m in enumerate(outbox.sent)]


def test_a_slow_instance_does_not_hold_the_other_back():
    state = memory_state()
    slow, fast = FakeMarketo(), FakeMarketo()
    fast_done, waits = threading.Event(), []
    slow.before_apply = lambda _records: waits.append(fast_done.wait(10))  # ends once the other instance wrote
    fast.after_apply = lambda _records: fast_done.set()
    instances = {"c1": slow, "c2": fast}
    inbound = queued_for(state, CONNECTION, 20) + queued_for(state, SECOND, 20)
    report = Writer(TWO, state, lambda c: instances[c]).process(inbound)
    assert waits == [True]  # one after the other, the slow call would have waited for nothing
    assert report.created == 40 and slow.calls == [20] and fast.calls == [20]
    assert len(report.by_connection) == 2 and not report.failed_message_ids


def test_an_instance_out_of_quota_parks_its_chunks_while_the_other_writes():
    state = memory_state()
    exhausted, healthy = FakeMarketo(), FakeMarketo()
    exhausted.quota_after = 0
    instances = {"c1": exhausted, "c2": healthy}
    report = Writer(TWO, state, lambda c: instances[c]).process(
        queued_for(state, CONNECTION, 10) + queued_for(state, SECOND, 10))
    assert report.deferred == 10 and report.created == 10 and healthy.calls == [10]
    assert not report.failed_message_ids


def packs_of_both(state: State, count: int) -> list[InboundMessage]:
    """The records of both connections, packed together as one send would pack them (packs span instances)."""
    mixed = FakeOutbox()
    for connection in (CONNECTION, SECOND):
        outbox = FakeOutbox()
        visma = FakeVisma([customer(i, f"{connection.id} firma {i}", NOW - minutes(5)) for i in range(1, count + 1)])
        Poller(state, QueueSink(state, outbox), clock=lambda: NOW).poll_entity(
            connection, visma, "customer", company_id="1", mapping=customer_mapping())
        mixed.sent.extend(outbox.sent)
    mixed.sends = [mixed.sent]
    return mixed.packed()


def test_an_instance_held_on_its_budget_does_not_delay_the_other_in_the_same_pack():
    state = memory_state()
    held, free = FakeMarketo(), FakeMarketo()
    order: list[str] = []
    free_done = threading.Event()
    # The held instance's call waits (as on its call budget) until the other instance has written both chunks.
    held.before_apply = lambda _records: order.append(f"held waited: {free_done.wait(10)}")
    # Set once both chunks have written and said so (the calls list fills before either has said so).
    free.after_apply = lambda records: (order.append(f"free wrote {len(records)}"),
                                        free_done.set() if sum(o.startswith("free") for o in order) == 2 else None)
    instances = {"c1": held, "c2": free}
    inbound = packs_of_both(state, 400)
    assert len(inbound) == 3  # 800 records: the middle pack holds records of both instances
    report = Writer(TWO, state, lambda c: instances[c]).process(inbound)
    # the free instance's two chunks (written side by side, in either order) before the held one's waits end
    assert sorted(order[:2]) == ["free wrote 100", "free wrote 300"] and order[2:] == ["held waited: True"] * 2
    assert report.created == 800 and sorted(held.calls) == [100, 300] and not report.failed_message_ids


def test_an_exhausted_instance_parks_its_share_of_a_pack_and_the_pack_is_not_retried():
    state = memory_state()
    exhausted, healthy = FakeMarketo(), FakeMarketo()
    exhausted.quota_after = 0
    instances = {"c1": exhausted, "c2": healthy}
    report = Writer(TWO, state, lambda c: instances[c]).process(packs_of_both(state, 100))
    assert report.deferred == 100 and report.created == 100 and healthy.calls == [100]
    assert not report.failed_message_ids
    [parked] = DeferredChunks(state).parked("c1")
    assert parked.records == 100 and DeferredChunks(state).parked("c2") == []


def test_one_instances_chunks_are_written_up_to_its_concurrent_calls_at_a_time():
    """A batch of six chunks for one instance: up to the connection's max_concurrency (5) calls at once, not one
    after another (one writer invocation would otherwise use a fifth of the budget's concurrency)."""
    state = memory_state()
    marketo = FakeMarketo()
    changed, in_flight, most = threading.Condition(), [0], [0]

    def enter(_records):
        with changed:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
            changed.notify_all()
            # A call that lasts until five are in flight (however slowly a loaded machine starts the threads; at
            # most 3 s when they never come), and a while longer, so that a sixth at once would show too.
            changed.wait_for(lambda: most[0] >= 5, timeout=3)
        threading.Event().wait(0.2)

    def leave(_records):
        with changed:
            in_flight[0] -= 1

    marketo.before_apply, marketo.after_apply = enter, leave
    report = Writer(TWO, state, lambda _c: marketo).process(queued_for(state, CONNECTION, 1_800))
    assert report.created == 1_800 and sorted(marketo.calls) == [300] * 6
    assert most[0] == CONNECTION.marketo.max_concurrency == 5
