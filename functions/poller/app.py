"""Poller Lambda: invoked by the EventBridge schedule; reads Visma changes and enqueues them.

An optional ``{"connections": ["id", ...]}`` in the event limits the run to those connections
(used by the CLI); the scheduled event itself carries nothing we need.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from ml_connector.observability import logger, metrics, tracer
from ml_connector.runtime import get_runtime


class PollFailed(RuntimeError):
    """Raised after every connection was tried, so one failing connection does not hide the others."""


@logger.inject_lambda_context(log_event=False)
@metrics.log_metrics(raise_on_empty_metrics=False)
@tracer.capture_lambda_handler
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime = get_runtime()
    only = event.get("connections") if isinstance(event, dict) else None

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000

    requeued = runtime.requeue_deferred(connection_ids=only)
    reports = runtime.poll(time_left=time_left, connection_ids=only)
    reference = runtime.sync_reference(time_left=time_left, connection_ids=only)
    result = {"entities": [r.model_dump() for r in reports], "reference": [r.model_dump() for r in reference],
              "requeued_after_quota_reset": requeued}
    logger.info("poll finished", extra=result)
    failed = [f"{r.connection}/{r.entity}: {r.error}" for r in reports if r.error]
    failed += [f"{r.connection}/reference: {r.error}" for r in reference if r.error]
    if failed:
        raise PollFailed("; ".join(failed))
    return result
