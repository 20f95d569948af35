"""Shared Powertools instances: one Logger, Metrics and Tracer for every module of the layer.

Service name and namespace come from POWERTOOLS_SERVICE_NAME / POWERTOOLS_METRICS_NAMESPACE
(set in template.yaml); the defaults keep local runs and tests working without them.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ml-connector")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "MlConnector")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
tracer = Tracer(service=SERVICE)

__all__ = ["logger", "metrics", "tracer", "MetricUnit"]
