"""The state ports on one DynamoDB table; ``keys`` documents its key schema."""

from __future__ import annotations

from typing import Any

from ml_connector.state.dynamodb.jobs import DynamoJobs
from ml_connector.state.dynamodb.leases import DynamoPollLeases
from ml_connector.state.dynamodb.limits import DynamoLimiterItems, DynamoQuotaBlock
from ml_connector.state.dynamodb.lookups import DynamoCustomerNumbers, DynamoReferenceHashes
from ml_connector.state.dynamodb.payments import DynamoPaymentFacts
from ml_connector.state.dynamodb.quarantine import DynamoQuarantine
from ml_connector.state.dynamodb.reconciles import DynamoReconciles
from ml_connector.state.dynamodb.runs import DynamoRuns
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.dynamodb.versions import DynamoRecordVersions
from ml_connector.state.dynamodb.watermarks import DynamoSweeps, DynamoWatermarks
from ml_connector.state.dynamodb.windows import DynamoWindows
from ml_connector.state.ports import State


def dynamodb_state(table_name: str, resource: Any, *, job_ttl_days: int = 14, typed: Any | None = None) -> State:
    """``typed``: a plain client of the resource's session (``table.typed_client``) for the record-state writes."""
    table = StateTable(table_name, resource, typed)
    return State(
        watermarks=DynamoWatermarks(table), records=DynamoRecordVersions(table), quarantine=DynamoQuarantine(table),
        jobs=DynamoJobs(table, job_ttl_days), quota=DynamoQuotaBlock(table), limiter=DynamoLimiterItems(table),
        payments=DynamoPaymentFacts(table), numbers=DynamoCustomerNumbers(table),
        reference=DynamoReferenceHashes(table), runs=DynamoRuns(table, job_ttl_days), sweeps=DynamoSweeps(table),
        leases=DynamoPollLeases(table), reconciles=DynamoReconciles(table), windows=DynamoWindows(table),
    )


__all__ = ["dynamodb_state"]
