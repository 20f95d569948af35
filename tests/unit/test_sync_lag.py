"""SyncLagSeconds measures the sync, not Visma's activity: the time since the start of the last complete
poll. A healthy sync of data unchanged for a year reports seconds; a poller that stops completing reports
a growing lag (or nothing at all, which the alarm treats as breaching)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from sync_fakes import CONNECTION, NOW, FakeOutbox, FakeVisma, customer, customer_mapping

from ml_connector.deadline import Deadline
from ml_connector.observability import metrics
from ml_connector.retry import TimeBudgetExceeded
from ml_connector.state import State
from ml_connector.state.memory import memory_state
from ml_connector.sync.poller import Poller, QueueSink
from ml_connector.visma.errors import VismaError

SCHEDULE = timedelta(minutes=15)
ALARM_THRESHOLD_S = 3600


def poll_at(state: State, visma: FakeVisma, at: datetime, deadline: Deadline | None = None) -> None:
    poller = Poller(state, QueueSink(state, FakeOutbox()), clock=lambda: at, safety_margin=5,
                    **({"deadline": deadline} if deadline else {}))
    poller.poll_entity(CONNECTION, visma, "customer", company_id="1", mapping=customer_mapping())


def lag_points(capsys: pytest.CaptureFixture[str]) -> list[float]:
    points = []
    for line in capsys.readouterr().out.splitlines():
        if '"SyncLagSeconds"' in line:
            document = json.loads(line)
            if document["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service"]]:  # what the alarm watches
                value = document["SyncLagSeconds"]
                points.extend(value if isinstance(value, list) else [value])
    metrics.clear_metrics()
    return points


class TooSlow(FakeVisma):
    """Every page takes longer than the invocation has left (a window that spans invocations continues, and
    completes, once pages come back at all)."""

    def iter_pages(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise TimeBudgetExceeded("Visma's answer would come after the invocation ends")


class Unreachable(FakeVisma):
    def iter_pages(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise VismaError("Service Unavailable", status=503)


def test_a_healthy_sync_of_data_unchanged_for_a_year_reports_less_than_the_schedule(capsys):
    state = memory_state()
    visma = FakeVisma([customer(i, f"Old {i} AS", NOW - timedelta(days=365)) for i in range(1, 4)])
    poll_at(state, visma, NOW)
    capsys.readouterr()
    poll_at(state, visma, NOW + SCHEDULE)
    [lag] = lag_points(capsys)
    assert 0 <= lag < SCHEDULE.total_seconds()


def test_polls_that_never_complete_report_a_lag_that_crosses_the_threshold(capsys):
    state = memory_state()
    visma = FakeVisma([customer(1, "Firma AS", NOW - timedelta(days=365))])
    poll_at(state, visma, NOW)
    capsys.readouterr()
    for tick in range(1, 9):  # two hours of polls that run out of time before the window is read
        poll_at(state, TooSlow(list(visma.records.values())), NOW + tick * SCHEDULE, deadline=Deadline(lambda: 1.0))
    lags = lag_points(capsys)
    assert lags == sorted(lags) and lags[-1] == 8 * SCHEDULE.total_seconds() > ALARM_THRESHOLD_S


def test_a_poll_that_fails_emits_no_lag_which_the_alarm_treats_as_breaching(capsys):
    state = memory_state()
    with pytest.raises(VismaError):
        poll_at(state, Unreachable([]), NOW)
    assert lag_points(capsys) == []
