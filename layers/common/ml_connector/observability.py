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


# The dashboard's by-connection widgets: only these keep connection (and entity) as metric dimensions.
PER_CONNECTION = frozenset({"SyncLagSeconds", "PollsFailed"})


def emit(name: str, value: float, unit: MetricUnit = MetricUnit.Count, **detail: str) -> None:
    """One data point under the service (what alarms and the dashboard watch), its detail (connection, entity,
    code ...) as EMF properties: searchable in Logs Insights, not billed. Every distinct dimension combination
    is a custom metric at $0.30 a month, so 500 connections x 3 entities x 10 metrics as dimensions would cost
    about $4,500 a month; only the PER_CONNECTION metrics are also kept by connection, for the dashboard.
    Callers aggregate per chunk or per poll, one data point per call."""
    _point(name, value, unit, dimensions={}, properties=detail)
    if name in PER_CONNECTION and detail:
        _point(name, value, unit, dimensions=detail, properties={})


def _point(name: str, value: float, unit: MetricUnit, *, dimensions: dict[str, str],
           properties: dict[str, str]) -> None:
    with single_metric(name=name, unit=unit, value=value, namespace=metrics.namespace,
                       default_dimensions={"service": metrics.service or SERVICE}) as metric:
        for key, dim_value in dimensions.items():
            metric.add_dimension(name=key, value=str(dim_value))
        for key, prop in properties.items():
            metric.add_metadata(key=key, value=str(prop))


__all__ = ["logger", "metrics", "tracer", "emit", "log_context", "MetricUnit"]
