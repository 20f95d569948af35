"""Dispatcher Lambda: invoked by the EventBridge schedule; sends one poll-work message per due connection.

The scheduled event's ``time`` is the tick (EventBridge's scheduled time); a retried invocation carries the
same tick, so its messages are recognised as already covered by the pollers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ml_connector.observability import logger, metrics, tracer
from ml_connector.runtime import get_runtime
from ml_connector.usecases.dispatch_due_polls import dispatch_due_polls


def tick_of(event: dict[str, Any]) -> datetime:
    stamp = event.get("time") if isinstance(event, dict) else None
    return datetime.fromisoformat(stamp) if isinstance(stamp, str) else datetime.now(UTC)


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return dispatch_due_polls(get_runtime(), tick_of(event)).summary()
