from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.models import parse_utc_iso, utc_iso


class DynamoQuotaBlock:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def block(self, munchkin_id: str, until: datetime) -> None:
        self._t.put({**keys.key(keys.limits(munchkin_id), keys.QUOTA_SK), "until": utc_iso(until)})

    def blocked_until(self, munchkin_id: str, now: datetime) -> datetime | None:
        item = self._t.get(keys.limits(munchkin_id), keys.QUOTA_SK)
        until = parse_utc_iso(item["until"]) if item else None
        return until if until and until > now else None


class DynamoLimiterItems:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def next_start(self, instance: str) -> Decimal | None:
        item = self._t.get(keys.limits(instance), keys.RATE_SK, consistent=True)
        return Decimal(str(item["next"])) if item else None

    def swap_next_start(self, instance: str, previous: Decimal | None, following: Decimal) -> bool:
        item = {**keys.key(keys.limits(instance), keys.RATE_SK), "next": following}
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(pk)"} if previous is None else {
            "ConditionExpression": "#n = :previous", "ExpressionAttributeNames": {"#n": "next"},
            "ExpressionAttributeValues": {":previous": previous}}
        return self._conditional_put(item, condition)

    def take_lease(self, instance: str, index: int, owner: str, now: Decimal, until: Decimal) -> bool:
        # Read first: writers waiting for a concurrent-call slot try the lease items every 50-100 ms, and a lease in
        # use then costs half a read unit instead of a failed conditional write's whole write unit. Eventually
        # consistent: a lease given back a moment ago may still look taken (the caller tries again next round);
        # one that looks free but was taken meanwhile is refused by the write's condition.
        held = self._t.get(keys.limits(instance), keys.lease_sk(index))
        if held is not None and Decimal(str(held["until"])) >= now:
            return False
        item = {**keys.key(keys.limits(instance), keys.lease_sk(index)), "owner": owner, "until": until}
        return self._conditional_put(item, {
            "ConditionExpression": "attribute_not_exists(pk) OR #u < :now",
            "ExpressionAttributeNames": {"#u": "until"}, "ExpressionAttributeValues": {":now": now}})

    def give_back_lease(self, instance: str, index: int, owner: str) -> None:
        try:
            self._t.delete(keys.key(keys.limits(instance), keys.lease_sk(index)),
                           ConditionExpression="#o = :me", ExpressionAttributeNames={"#o": "owner"},
                           ExpressionAttributeValues={":me": owner})
        except Exception as exc:
            if not self._t.conditional_failure(exc):
                raise  # a lease that expired and was taken over is no longer ours to delete

    def _conditional_put(self, item: dict[str, Any], condition: dict[str, Any]) -> bool:
        try:
            self._t.put(item, **condition)
            return True
        except Exception as exc:
            if self._t.conditional_failure(exc):
                return False
            raise
