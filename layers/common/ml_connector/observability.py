"""Shared Powertools instances and the one way the connector emits a metric.

Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
(set in template.yaml; the service is the stack name there, so each stack has its own metrics and
alarms); the defaults keep local runs and tests working without them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ml-connector")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MlConnector")

class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time: the same in Lambda, and lets local runs (demo, CLI)
    redirect the functions' logs to a file the way CloudWatch would collect them."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


logger = Logger(service=SERVICE, logger_handler=logging.StreamHandler(_CurrentStdout()))  # type: ignore[arg-type]
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)


@contextmanager
def log_context(**keys: str) -> Iterator[None]:
    """Every log line inside the block carries these keys (connection, entity, job ID ...); per thread, so
    writers working on several Marketo instances at once keep their lines apart."""
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys(list(keys))


def emit(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **dimensions: str) -> None:
    """One data point, twice: under the service alone (what alarms watch) and with its detail dimensions
    (connection, entity, code ...) for the dashboard. Callers aggregate per chunk or per poll, because EMF
    drops more than 100 values of one metric in one document."""
    metrics.add_metric(name=name, unit=unit, value=value)
    if dimensions:
        with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace,
                           default_dimensions={"service": metrics.service or SERVICE}) as metric:
            for key, dim_value in dimensions.items():
                metric.add_dimension(name=key, value=str(dim_value))


__all__ = ["logger", "metrics", "tracer", "emit", "log_context", "MetricUnit"]
