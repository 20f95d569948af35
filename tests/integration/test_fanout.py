"""Fan-out polling through the local stack: the dispatcher queues one poll per due connection on each tick,
the poller polls exactly the connection of its message under a lease, and no connection starves.

Ticks are the scheduled events' ``time`` (15 minutes apart, as ScheduleRate's default), given explicitly so
the test does not wait for real minutes.
"""

from __future__ import annotations

import itertools
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localrun.environment import LocalEnvironment, TickFailed
from localrun.event_source import SqsEventSource
from localrun.remote_drain import drain_elsewhere, process_pool
from ml_connector.state import utc_iso
from ml_connector.sync.poll_schedule import PollWork
from sandbox.marketo import MarketoSandbox
from sandbox.visma import VismaSandbox

pytestmark = pytest.mark.integration

START = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=15)
_ticks = itertools.count()


def next_tick() -> datetime:
    """The next schedule tick (module-wide, so every test's ticks come after the previous test's)."""
    return START + timedelta(minutes=15 * next(_ticks))


@pytest.fixture(scope="module")
def fan(local_stack, tmp_path_factory):
    """Four connections, in this order: default, a slow one, one that cannot log in to Visma, and the last."""
    log = tmp_path_factory.mktemp("fanout") / "lambda.log"
    env: LocalEnvironment = local_stack(seed=41, customers=12, suppliers=4, log_path=log)
    with VismaSandbox(seed=42, customers=30, suppliers=5, company_id="2000001", latency=0.05) as slow_visma, \
            MarketoSandbox(munchkin_id="200-AAA-001") as slow_marketo, \
            VismaSandbox(seed=43, customers=3, suppliers=1, company_id="2000002") as broken_visma, \
            MarketoSandbox(munchkin_id="200-AAA-002") as broken_marketo, \
            VismaSandbox(seed=44, customers=6, suppliers=2, company_id="2000003") as last_visma, \
            MarketoSandbox(munchkin_id="200-AAA-003") as last_marketo:
        env.add_connection("slow", slow_visma, slow_marketo, poll_interval_minutes=30)
        env.add_connection("broken", broken_visma, broken_marketo)
        env.add_connection("last", last_visma, last_marketo)
        env.aws.client("secretsmanager").put_secret_value(
            SecretId="ml-connector/broken/visma",
            SecretString=json.dumps({**broken_visma.credentials, "client_secret": "not-the-secret"}))
        yield env, log, slow_visma


def tick(env: LocalEnvironment, at: datetime) -> dict[str, Any]:
    """One tick; a failing connection makes it raise, with every poll's outcome on the exception."""
    try:
        return env.run_poller(at=at)
    except TickFailed as failed:
        return failed.report


def metric_points(log, name: str) -> list[tuple[dict[str, str], float]]:
    """(dimensions, value) of every EMF data point of ``name`` in the functions' log."""
    points = []
    for line in log.read_text().splitlines():
        if not line.startswith("{") or '"_aws"' not in line:
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            if any(m["Name"] == name for m in directive["Metrics"]):
                dims = {d: document[d] for group in directive["Dimensions"] for d in group}
                values = document[name] if isinstance(document[name], list) else [document[name]]
                points += [(dims, float(v)) for v in values]
    return points


def test_only_due_connections_are_polled_on_a_tick(fan):
    env, _, _ = fan
    runs = env.state().leases
    polled_on = []
    for _ in range(3):
        at = next_tick()
        report = tick(env, at)
        assert set(report["dispatched"]["due"]) | set(report["dispatched"]["not_due"]) == \
            {"default", "slow", "broken", "last"}
        polled_on.append(sorted(report["polled"]))
        assert runs.get("last").tick == utc_iso(at)  # the tick each poll served is what due-ness counts from
    # "slow" polls every 30 minutes, the others on every 15-minute tick (never polled: due at once).
    assert polled_on == [["broken", "default", "last", "slow"], ["broken", "default", "last"],
                         ["broken", "default", "last", "slow"]]


def test_a_connection_listed_last_is_polled_on_every_tick_even_when_earlier_ones_are_slow_or_failing(fan):
    env, log, slow_visma = fan
    env.visma.store.edit_random(2, rng_seed=5)
    for n in range(3):
        at = next_tick()
        report = tick(env, at)
        assert "last" in report["polled"] and "broken" in report["polled"], report
        last = [e for e in report["entities"] if e["connection"] == "last"]
        assert last and all(e["error"] is None for e in last)
        broken = [e for e in report["entities"] if e["connection"] == "broken"]
        assert broken and all(e["error"] for e in broken)  # fails every time, and is sent every time
        assert env.state().leases.get("last").tick == utc_iso(at)
    env.drain()
    assert env.verify("last").ok
    # Failures and lag per connection: PollsFailed 1 for the broken one, 0 for the others; lag by connection.
    failed = metric_points(log, "PollsFailed")
    by_connection = {}
    for dims, value in failed:
        if "connection" in dims:
            by_connection.setdefault(dims["connection"], set()).add(value)
    assert by_connection["broken"] == {1.0} and by_connection["last"] == {0.0}
    assert all(dims["service"] == "ml-connector" for dims, _ in failed)
    lag = {dims.get("connection") for dims, _ in metric_points(log, "SyncLagSeconds")}
    assert {"default", "slow", "last"} <= lag


def _send_work(env: LocalEnvironment, connection: str, at: datetime) -> None:
    env.aws.client("sqs").send_message(QueueUrl=env.resource("PollWorkQueue"),
                                       MessageBody=PollWork(connection=connection, tick=at).model_dump_json())


def _wait_until_leased(env: LocalEnvironment, connection: str, at: datetime, timeout_s: float = 60.0) -> None:
    """Until the other process's poller holds the connection's lease for tick ``at``."""
    runs, deadline = env.state().leases, time.monotonic() + timeout_s
    while not ((run := runs.get(connection)) and run.owner and run.tick == utc_iso(at)):
        assert time.monotonic() < deadline, "the other process never started its poll"
        time.sleep(0.05)


def _claims(stats: dict[str, Any]) -> list[str]:
    return [p["claim"] for result in stats["results"] for p in result["polls"]]


def test_two_concurrent_pollers_of_one_connection_poll_it_once(fan, tmp_path):
    """The same tick's message twice (a retried dispatch): two invocations at once, one polls, the other's
    message is done (the holder covers that tick)."""
    env, _, slow_visma = fan
    at = next_tick()
    slow_visma.faults.delay_next(1, 4.0)  # the first poll holds the lease for at least four seconds
    calls_before = slow_visma.stats.snapshot()["erp_calls"]
    _send_work(env, "slow", at)
    _send_work(env, "slow", at)
    with process_pool() as pool:
        elsewhere = drain_elsewhere(env, pool, "PollerFunction", tmp_path / "other.log")
        _wait_until_leased(env, "slow", at)
        here = env.poll_work_source().drain(max_batches=1).model_dump()
        other = elsewhere.result(timeout=120)
    assert (_claims(other), _claims(here)) == (["started"], ["covered"])
    assert here["failed"] == other["failed"] == 0  # both messages handled, none put back
    assert env.queue_depth("PollWorkQueue") == 0 and env.queue_depth("PollWorkDeadLetterQueue") == 0
    run = env.state().leases.get("slow")
    assert run.tick == utc_iso(at) and run.owner is None and run.outcome == "ok"
    polled = slow_visma.stats.snapshot()["erp_calls"] - calls_before
    assert 0 < polled < 2 * 10  # one poll's calls (customers, suppliers, payments), not two


def test_a_newer_tick_waits_for_the_running_poll_then_polls(fan, tmp_path):
    """A poll for an older tick holds the lease when the next tick's message arrives: that message is put back
    (a batch item failure), not lost, and polls once the lease is free."""
    env, _, slow_visma = fan
    older, newer = next_tick(), next_tick()
    slow_visma.faults.delay_next(1, 4.0)
    _send_work(env, "slow", older)
    with process_pool() as pool:
        elsewhere = drain_elsewhere(env, pool, "PollerFunction", tmp_path / "other.log")
        _wait_until_leased(env, "slow", older)
        _send_work(env, "slow", newer)
        # The emulator makes a put-back message visible at once (Lambda waits out the visibility timeout).
        source = SqsEventSource(env.stack, "PollerFunction", env=env.env())
        here = source.drain(max_batches=1).model_dump()
        other = elsewhere.result(timeout=120)
    assert _claims(other) == ["started"] and _claims(here) == ["busy"]
    assert here["failed"] == 1 and here["results"][0]["batchItemFailures"]
    assert env.state().leases.get("slow").tick == utc_iso(older)
    again = source.drain().model_dump()
    assert _claims(again) == ["started"]
    assert env.state().leases.get("slow").tick == utc_iso(newer)
    assert env.queue_depth("PollWorkQueue") == 0 and env.queue_depth("PollWorkDeadLetterQueue") == 0
