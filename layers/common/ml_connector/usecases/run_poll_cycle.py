"""Every connection polled in turn, now (the CLI's cycle and a direct invocation of the poller): each one
completely, under its lease, by ``poll_one_connection``, the one copy of a connection's poll. On a schedule
the dispatcher fans the same work out instead, one poll-work message per due connection."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel

from ml_connector.deadline import Deadline
from ml_connector.runtime import Runtime
from ml_connector.sync.poll_schedule import Claim
from ml_connector.sync.poller import EntityPollReport
from ml_connector.sync.reference import ReferenceReport
from ml_connector.usecases.poll_one_connection import ConnectionPollReport, poll_one_connection


class PollCycleReport(BaseModel):
    entities: list[EntityPollReport] = []
    reference: list[ReferenceReport] = []
    requeued_after_quota_reset: int = 0
    polled: list[str] = []
    not_polled: dict[str, Claim] = {}  # connection -> why (another poll held it or covered the tick)
    failed: list[str] = []  # "connection/entity: error", what went wrong in any of the polls

    @classmethod
    def of(cls, polls: Iterable[ConnectionPollReport]) -> PollCycleReport:
        report = cls()
        for poll in polls:
            report.entities += poll.entities
            report.reference += poll.reference
            report.requeued_after_quota_reset += poll.requeued_after_quota_reset
            report.failed += poll.failures()
            if poll.claim is Claim.STARTED:
                report.polled.append(poll.connection)
            else:
                report.not_polled[poll.connection] = poll.claim
        return report

    def failures(self) -> list[str]:
        return self.failed

    def summary(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def run_poll_cycle(runtime: Runtime, deadline: Deadline, only: list[str] | None = None) -> PollCycleReport:
    tick = datetime.now(UTC)
    polls = []
    for connection in runtime.connections(only):
        poll = poll_one_connection(runtime, connection.id, deadline, tick)
        polls.append(poll)
        # A window left open for lack of time continues here while this run has time (the CLI has no limit);
        # what is left when it has none is continued by the next cycle.
        while poll.continues and not deadline.within(runtime.settings.safety_margin_seconds):
            poll = poll_one_connection(runtime, connection.id, deadline, tick, continuation=True)
            polls.append(poll)
    return PollCycleReport.of(polls)
