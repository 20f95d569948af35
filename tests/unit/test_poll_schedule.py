"""Fan-out polling's rules: when a connection is due, and the lease that lets one poll of a connection run at
a time (on the in-memory state, and the same contract on DynamoDB in moto's server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from localrun.aws import LocalAws
from ml_connector.config import ConfigError, load_settings, schedule_minutes
from ml_connector.deadline import Deadline
from ml_connector.state import utc_iso
from ml_connector.state.dynamodb.leases import DynamoPollLeases
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.memory import MemoryPollLeases
from ml_connector.sync.poll_schedule import Claim, PollLease, is_due

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


# -- due-ness -------------------------------------------------------------------------------------

def test_never_polled_is_due_and_no_interval_means_every_tick():
    assert is_due(None, T0, 60, 15)
    assert is_due(T0, T0 + minutes(15), None, 15)
    assert is_due(T0, T0 + minutes(1), None, None)  # however close the ticks


@pytest.mark.parametrize(("interval", "due_ticks"), [(15, [1, 2, 3, 4, 5, 6]), (30, [2, 4, 6]), (45, [3, 6]),
                                                     (40, [3, 6])])
def test_an_interval_polls_on_the_tick_nearest_to_it(interval, due_ticks):
    """Ticks every 15 minutes; each poll starts on the tick it is due (40 minutes: the 45-minute tick, the
    nearest; never early by more than half a tick)."""
    last, polled = T0, []
    for n in range(1, 7):
        tick = T0 + minutes(15 * n)
        if is_due(last, tick, interval, 15):
            polled.append(n)
            last = tick
    assert polled == due_ticks


def test_seconds_of_scheduling_jitter_do_not_skip_a_tick():
    last = T0 + timedelta(seconds=40)  # that tick fired late
    assert is_due(last, T0 + minutes(30), 30, 15)
    assert not is_due(last, T0 + minutes(15), 30, 15)


def test_due_ness_counts_from_the_last_started_tick_not_the_list_order():
    """Two connections with the same cadence are due on the same ticks, whichever is listed first: each counts
    from its own last start."""
    first_last, second_last = T0, T0 - minutes(15)
    tick = T0 + minutes(15)
    assert is_due(first_last, tick, 15, 15) and is_due(second_last, tick, 15, 15)
    assert not is_due(tick, tick, 15, 15)  # just started for this tick: not again


def test_schedule_rate_expressions():
    assert [schedule_minutes(e) for e in ("rate(15 minutes)", "rate(1 minute)", "rate(2 hours)", "rate(1 day)")] \
        == [15, 1, 120, 1440]
    assert schedule_minutes("cron(0/15 * * * ? *)") is None and schedule_minutes("") is None


# -- the setting ----------------------------------------------------------------------------------

def _settings(interval: Any, schedule: str = "rate(15 minutes)") -> Any:
    connection = {"id": "norway", "visma": {"secret_id": "v"},
                  "marketo": {"secret_id": "m", "munchkin_id": "123-ABC-456"}, "poll_interval_minutes": interval}
    return load_settings({"STATE_TABLE": "state", "SCHEDULE_RATE": schedule,
                          "CONNECTIONS_CONFIG": json.dumps({"connections": [connection]})})


def test_poll_interval_is_validated_at_load_naming_the_field():
    assert _settings(60).connections[0].poll_interval_minutes == 60
    assert _settings(None).connections[0].poll_interval_minutes is None
    for bad in (0, -5, "often", 10_081):
        with pytest.raises(ConfigError, match=r"connections\.0\.poll_interval_minutes"):
            _settings(bad)
    with pytest.raises(ConfigError, match=r"connections\.0\.poll_interval_minutes: 5 is shorter than .* 15 minutes"):
        _settings(5)
    assert _settings(5, schedule="rate(5 minutes)").schedule_minutes == 5


# -- the lease ------------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(scope="module")
def dynamodb_table() -> Iterator[StateTable]:
    with LocalAws() as aws:
        aws.client("dynamodb").create_table(
            TableName="runs", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        yield StateTable("runs", aws.session().resource("dynamodb", endpoint_url=aws.endpoint_url))


@pytest.fixture(params=["memory", "dynamodb"])
def runs(request: pytest.FixtureRequest) -> Any:
    if request.param == "memory":
        return MemoryPollLeases()
    return DynamoPollLeases(request.getfixturevalue("dynamodb_table"))


@pytest.fixture
def connection(request: pytest.FixtureRequest) -> str:
    return request.node.name.replace("[", "-").replace("]", "")  # one item per test on the shared table


def lease(runs: Any, connection: str, clock: Clock) -> PollLease:
    return PollLease(runs, connection, 330, clock=clock)


def test_one_holder_at_a_time(runs, connection):
    clock = Clock()
    first, second = lease(runs, connection, clock), lease(runs, connection, clock)
    assert first.claim(T0) is Claim.STARTED
    assert second.claim(T0) is Claim.COVERED  # same tick: the holder does what it was asked
    assert second.claim(T0 + minutes(15)) is Claim.BUSY  # a later tick: still to do once the holder is done
    run = runs.get(connection)
    assert (run.owner, run.tick) == (first.owner, "2026-03-02T08:00:00.000000Z")


def test_release_frees_the_lease_and_keeps_the_tick(runs, connection):
    clock = Clock()
    first, second = lease(runs, connection, clock), lease(runs, connection, clock)
    first.claim(T0)
    first.release("ok")
    run = runs.get(connection)
    assert run.owner is None and run.lease_until is None and run.outcome == "ok"
    assert run.tick == "2026-03-02T08:00:00.000000Z"  # due-ness still counts from it
    assert second.claim(T0) is Claim.COVERED  # a late duplicate of that tick's message
    assert second.claim(T0 + minutes(15)) is Claim.STARTED


def test_a_dead_holders_lease_expires(runs, connection):
    clock = Clock()
    dead, next_one = lease(runs, connection, clock), lease(runs, connection, clock)
    dead.claim(T0)  # never released: the invocation was killed
    clock.now = T0 + timedelta(seconds=329)
    assert next_one.claim(T0 + minutes(15)) is Claim.BUSY
    clock.now = T0 + timedelta(seconds=330)
    assert next_one.claim(T0 + minutes(15)) is Claim.STARTED
    dead.release("ok")  # too late: the lease is no longer its own to release
    assert runs.get(connection).owner == next_one.owner


def test_renewal_keeps_the_lease_and_only_for_its_holder(runs, connection):
    clock = Clock()
    holder, other = lease(runs, connection, clock), lease(runs, connection, clock)
    holder.claim(T0)
    clock.now = T0 + timedelta(seconds=300)
    holder.renew()
    other.renew()  # not the holder: changes nothing
    clock.now = T0 + timedelta(seconds=600)
    assert other.claim(T0 + minutes(15)) is Claim.BUSY  # renewed at 300 s for another 330 s
    assert runs.get(connection).owner == holder.owner


class CountedRenewals(MemoryPollLeases):
    def __init__(self) -> None:
        super().__init__()
        self.renewals = 0

    def renew(self, connection: str, owner: str, until: datetime) -> bool:
        self.renewals += 1
        return super().renew(connection, owner, until)


def test_a_lease_that_outlasts_the_invocation_is_not_renewed():
    """A Lambda poller's lease (330 s) outlasts its timeout (300 s): renewing before each entity would cost a
    write unit each and change nothing. Without a deadline (the CLI), or with more time left than the lease
    has, it is renewed for another full term."""
    runs, clock = CountedRenewals(), Clock()
    holder = PollLease(runs, "c1", 330, clock=clock)
    holder.claim(T0)
    clock.now = T0 + timedelta(seconds=20)
    holder.renew(Deadline(lambda: 280.0))
    assert runs.renewals == 0
    holder.renew(Deadline(lambda: 400.0))  # the invocation would outlast the lease (until 330 s)
    assert runs.renewals == 1 and runs.get("c1").lease_until == utc_iso(T0 + timedelta(seconds=350))
    holder.renew(Deadline(lambda: 300.0))  # 20 + 300 s is within the renewed lease
    assert runs.renewals == 1
    holder.renew()
    assert runs.renewals == 2


def test_all_reads_every_connection_that_ever_started(runs, connection):
    clock = Clock()
    names = [f"{connection}-{i}" for i in range(3)]
    for name in names[:2]:
        lease(runs, name, clock).claim(T0)
    assert set(runs.all(names)) == set(names[:2])


def test_a_continuation_starts_for_the_tick_a_poll_already_served_but_never_under_a_live_lease(runs, connection):
    clock = Clock()
    first, continuation, late = (lease(runs, connection, clock) for _ in range(3))
    first.claim(T0)
    # A poll of the tick holds the lease: it works on the window itself (and asks for its own continuation).
    assert continuation.claim(T0, continuation=True) is Claim.COVERED
    first.release("ok")
    assert late.claim(T0) is Claim.COVERED  # a duplicate of the tick's message is still dropped
    assert continuation.claim(T0, continuation=True) is Claim.STARTED  # the window it left open continues
    continuation.release("ok")
    late.claim(T0 + minutes(15))
    late.release("ok")
    # A later tick's poll continued the window itself: the older continuation has nothing left to do.
    assert lease(runs, connection, clock).claim(T0, continuation=True) is Claim.COVERED
