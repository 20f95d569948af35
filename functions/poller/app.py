"""Poller Lambda: polls the connection named in each poll-work message (SQS, batch size 1), under its lease.

A message whose connection another invocation is polling for an older tick is reported as a batch item
failure: SQS delivers it again after the visibility timeout, when that poll is over. One whose tick a poll
already covered is done, unless it is a continuation: a poll that ran out of time with a window open queues one,
and the invocation that takes it continues that window at once. A direct invocation
(``{"connections": ["id", ...]}`` or ``{}`` for all) polls those connections in turn and raises if any poll
failed, as the CLI's cycle does.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ml_connector.deadline import Deadline
from ml_connector.observability import logger, metrics, tracer
from ml_connector.runtime import get_runtime
from ml_connector.sync.poll_schedule import Claim, PollWork
from ml_connector.usecases.poll_one_connection import poll_requested
from ml_connector.usecases.run_poll_cycle import run_poll_cycle


class PollFailed(RuntimeError):
    """Raised after every connection was tried, so one failing connection does not hide the others."""


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and "Records" in event:
        return _poll_work(event["Records"], Deadline.of_lambda(context))
    only = event.get("connections") if isinstance(event, dict) else None
    report = run_poll_cycle(get_runtime(), Deadline.of_lambda(context), only)
    result = report.summary()
    logger.info("poll finished", extra=result)
    if report.failures():
        raise PollFailed("; ".join(report.failures()))
    return result


def _poll_work(records: list[dict[str, Any]], deadline: Deadline) -> dict[str, Any]:
    runtime = get_runtime()
    busy, polls = [], []
    for record in records:
        report = poll_requested(runtime, deadline, PollWork.model_validate_json(record["body"]))
        logger.info("poll finished", extra={"poll": report.model_dump(mode="json")})
        if report.claim is Claim.BUSY:
            busy.append({"itemIdentifier": record["messageId"]})
        polls.append(report.model_dump(mode="json"))
    # Lambda reads batchItemFailures; "polls" is the report for whoever invoked it directly (local runs).
    return {"batchItemFailures": busy, "polls": polls}
