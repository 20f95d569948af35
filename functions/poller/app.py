"""Poller Lambda: invoked by the EventBridge schedule; reads Visma changes and enqueues them.

An optional ``{"connections": ["id", ...]}`` in the event limits the run to those connections
(used by the CLI); the scheduled event itself carries nothing we need.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ml_connector.deadline import Deadline
from ml_connector.observability import logger, metrics, tracer
from ml_connector.runtime import get_runtime
from ml_connector.usecases.run_poll_cycle import run_poll_cycle


class PollFailed(RuntimeError):
    """Raised after every connection was tried, so one failing connection does not hide the others."""


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    only = event.get("connections") if isinstance(event, dict) else None
    report = run_poll_cycle(get_runtime(), Deadline.of_lambda(context), only)
    result = report.summary()
    logger.info("poll finished", extra=result)
    if report.failures():
        raise PollFailed("; ".join(report.failures()))
    return result
