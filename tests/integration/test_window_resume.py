"""Issue 16: a poll window that needs longer than one poller invocation, through the local stack.

The Visma sandbox answers each ERP call in 0.5-1 s (realistic latency) and the poller's budget is a few
seconds (the safety margin leaves that much of the Lambda timeout), so reading the customers takes several
invocations. Each one that runs out of time saves the window and puts a continuation on the poll-work queue,
which the next invocation takes up at once: one schedule tick, several invocations, one window.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from localrun.environment import LocalEnvironment

pytestmark = [pytest.mark.integration, pytest.mark.heavy]

# Of the poller's 300 s timeout (the rest is the safety margin). The first invocation makes three ERP calls of
# >= 0.5 s before its first customer page is done (open invoices, balances, the page) and stops after it; a
# continuation takes those two lists from the checkpoint and reads at most three pages of >= 0.5 s in 1.5 s, so
# the six pages take at least three invocations, however the latencies fall.
BUDGET_S = 1.5
PAGE_SIZE = 10
CUSTOMERS = 60


@pytest.fixture(scope="module")
def slow(local_stack, tmp_path_factory) -> LocalEnvironment:
    log = tmp_path_factory.mktemp("window") / "lambda.log"
    return local_stack(seed=61, customers=CUSTOMERS, suppliers=3, log_path=log,
                       visma_options={"latency": (0.5, 1.0)},
                       extra_env={"SAFETY_MARGIN_SECONDS": str(300 - BUDGET_S), "VISMA_PAGE_SIZE": str(PAGE_SIZE)})


def test_a_window_spanning_invocations_continues_at_once_and_marketo_converges(slow):
    tick = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=15)
    report = slow.run_poller(at=tick)  # one dispatcher tick: every invocation below came from it
    customer_polls = [e for e in report["entities"] if e["entity"] == "customer"]
    assert len(customer_polls) >= 3, [(e["pages"], e["complete"]) for e in customer_polls]
    assert all(e["continues"] for e in customer_polls[:-1]) and customer_polls[-1]["complete"]
    assert [e["resumed"] for e in customer_polls] == [False] + [True] * (len(customer_polls) - 1)
    assert customer_polls[-1]["invocations"] == len(customer_polls)
    assert sum(e["pages"] for e in customer_polls) == -(-CUSTOMERS // PAGE_SIZE)  # each page read once
    # a continuation calls Visma for its pages only (and one the deadline cut short), not the payment lists again
    assert all(e["visma_calls"] <= e["pages"] + 1 for e in customer_polls[1:]), customer_polls
    assert report["dispatched"]["due"] == [slow.stack.parameters["ConnectionId"]]  # continued, not re-ticked
    state = slow.state()
    connection = slow.stack.parameters["ConnectionId"]
    assert state.watermarks.get(connection, "customer") is not None
    assert state.windows.get(connection, "customer") is None
    slow._extra_env.pop("SAFETY_MARGIN_SECONDS")  # the writers run with their usual margin
    slow.drain()
    verification = slow.verify()
    assert verification.ok, verification.summary()


def test_window_continued_is_reported_as_a_metric(slow):
    log = slow._log_path
    assert log is not None
    points = [json.loads(line) for line in log.read_text().splitlines() if '"WindowContinued"' in line]
    assert points and all(p["_aws"]["CloudWatchMetrics"][0]["Namespace"] for p in points)


@pytest.fixture(scope="module")
def ties(local_stack, tmp_path_factory) -> LocalEnvironment:
    log = tmp_path_factory.mktemp("ties") / "lambda.log"
    env = local_stack(seed=62, customers=150, suppliers=2, log_path=log, extra_env={"VISMA_PAGE_SIZE": "100"})
    customers = env.visma.store.records("customer")
    shared = min(raw["lastModifiedDateTime"] for raw in customers)
    for raw in customers:  # 150 customers share one stamp, across the boundary of two pages of 100
        env.visma.store.put_raw("customer", {**raw, "lastModifiedDateTime": shared})
    env.visma.faults.shuffle_ties("customer")
    return env


def test_150_ties_in_a_different_order_per_request_complete_the_window_and_marketo_converges(ties):
    connection = ties.stack.parameters["ConnectionId"]
    polls = []
    for _ in range(3):  # schedule ticks; before issue 16 the window never completed and the watermark stayed
        polls += [e for e in ties.cycle("tick").poll if e["entity"] == "customer"]
        if ties.state().watermarks.get(connection, "customer") is not None:
            break
    assert polls[-1]["complete"] and polls[-1]["passes"] >= 2, [(p["passes"], p["complete"]) for p in polls]
    assert ties.state().windows.get(connection, "customer") is None
    verification = ties.verify()
    assert verification.ok, verification.summary()
