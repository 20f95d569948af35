"""Acting through a deployed stack's own functions instead of in-process: ``sync --once --stack`` invokes
the poller Lambda, so the poll runs where it always runs (its role, its network, its one-at-a-time
concurrency) and the writers drain the queue in Lambda as after a scheduled poll."""

from __future__ import annotations

import json
from typing import Any

import boto3
from botocore.config import Config

from ml_connector.queues import OperationError

# A poll may take the poller's whole timeout (300 s); a retried RequestResponse call would poll twice.
INVOKE_CONFIG = Config(read_timeout=900, connect_timeout=10, retries={"total_max_attempts": 1})


def lambda_client(region: str) -> Any:
    return boto3.client("lambda", region_name=region or None, config=INVOKE_CONFIG)


def invoke_poller(lam: Any, function_name: str, connections: list[str] | None = None) -> dict[str, Any]:
    """The poll report of one synchronous run of the deployed poller (``{"connections": [...]}`` limits it)."""
    event = {"connections": connections} if connections else {}
    response = lam.invoke(FunctionName=function_name, InvocationType="RequestResponse",
                          Payload=json.dumps(event).encode("utf-8"))
    body = response["Payload"].read()
    try:
        result = json.loads(body) if body else {}
    except json.JSONDecodeError:
        result = None
    if response.get("FunctionError"):
        # The poller raises after trying every connection; Lambda returns its error type and message.
        error = result if isinstance(result, dict) else {}
        detail = error.get("errorMessage") or body.decode("utf-8", "replace").strip()[:500]
        raise OperationError(f"the poller {function_name} failed: "
                             f"{error.get('errorType', response['FunctionError'])}: {detail}")
    if not isinstance(result, dict):
        raise OperationError(f"the poller {function_name} returned no poll report: {body[:200]!r}")
    return result
