"""The poller sends whole packs of 300 records (one Marketo call each) across Visma pages: a page's remainder
waits for the next page's records, and is sent before the window's progress is kept (a checkpoint or the
watermark), so nothing held back is ever counted as sent."""

from __future__ import annotations

from typing import Any

from sync_fakes import CONNECTION, NOW, FakeOutbox, FakeVisma, customer, customer_mapping, minutes

from ml_connector.deadline import Deadline
from ml_connector.state.memory import memory_state
from ml_connector.sync.poller import Poller, QueueSink

PAGES_OF_250 = CONNECTION.model_copy(update={"visma": CONNECTION.visma.model_copy(update={"page_size": 250})})


def customers(count: int) -> list[dict[str, object]]:
    return [customer(i, f"Firma {i} AS", NOW - minutes(2 * count - i)) for i in range(1, count + 1)]


def poll(records: int, out_of_time_after_page: int | None = None) -> tuple[FakeOutbox, Any, Any]:
    state, outbox, visma = memory_state(), FakeOutbox(), FakeVisma(customers(records))
    seconds_left = [100.0]
    if out_of_time_after_page is not None:  # under the 5 s safety margin once that page was served
        visma.between_pages = lambda page: seconds_left.__setitem__(0, 4.0 if page >= out_of_time_after_page
                                                                     else 100.0)
    poller = Poller(state, QueueSink(state, outbox), clock=lambda: NOW, safety_margin=5,
                    deadline=Deadline(lambda: seconds_left[0]))
    report = poller.poll_entity(PAGES_OF_250, visma, "customer", company_id="1", mapping=customer_mapping())
    return outbox, report, state


def test_pages_of_250_go_out_as_whole_packs_and_the_rest_before_the_watermark_moves():
    outbox, report, state = poll(1000)
    assert report.complete and report.pages == 4
    assert [len(s) for s in outbox.sends] == [300, 300, 300, 100]  # per page it was 250 x 4 (4 calls, 1 part-filled)
    assert sorted(m.internal_id for m in outbox.sent) == list(range(1, 1001))
    assert state.watermarks.get("c1", "customer") is not None


def test_what_a_checkpoint_lists_as_sent_was_sent():
    # Out of time after a few pages of 250: whole packs, then the held remainder sent before the checkpoint.
    outbox, report, state = poll(1000, out_of_time_after_page=2)
    assert report.stopped_early and report.checkpointed
    checkpoint = state.windows.get("c1", "customer")
    assert checkpoint is not None
    read = 250 * report.pages
    assert 1 < report.pages < 4 and read % 300  # a remainder was held back when time ran out
    assert [len(s) for s in outbox.sends] == [300] * (read // 300) + [read % 300]
    assert {m.internal_id for m in outbox.sent} == set(range(1, read + 1))
