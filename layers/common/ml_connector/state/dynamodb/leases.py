"""Poll leases per connection: one item holds the lease and the tick of the last poll that started."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.models import PollRun, utc_iso

_NAMES = {"#o": "owner", "#u": "lease_until", "#t": "tick", "#s": "started_at", "#f": "finished_at",
          "#r": "outcome"}


class DynamoPollLeases:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def start(self, connection: str, owner: str, tick: datetime, now: datetime, until: datetime, *,
              resume: bool = False) -> bool:
        # One conditional write: two pollers can never both see the lease free (strings compare as times).
        served = "#t <= :tick" if resume else "#t < :tick"
        return self._update(connection, {
            "UpdateExpression": "SET #o = :me, #u = :until, #t = :tick, #s = :now REMOVE #f, #r",
            "ConditionExpression": "(attribute_not_exists(#u) OR #u <= :now)"
                                   f" AND (attribute_not_exists(#t) OR {served})",
            "ExpressionAttributeValues": {":me": owner, ":until": utc_iso(until), ":tick": utc_iso(tick),
                                          ":now": utc_iso(now)}})

    def renew(self, connection: str, owner: str, until: datetime) -> bool:
        return self._update(connection, {
            "UpdateExpression": "SET #u = :until", "ConditionExpression": "#o = :me",
            "ExpressionAttributeValues": {":me": owner, ":until": utc_iso(until)}})

    def finish(self, connection: str, owner: str, now: datetime, outcome: str) -> None:
        # A lease that expired and was taken over is no longer ours: the new holder's item stays as it is.
        self._update(connection, {
            "UpdateExpression": "SET #f = :now, #r = :outcome REMOVE #o, #u", "ConditionExpression": "#o = :me",
            "ExpressionAttributeValues": {":me": owner, ":now": utc_iso(now), ":outcome": outcome}})

    def get(self, connection: str) -> PollRun | None:
        item = self._t.get(keys.leases(connection), keys.POLL_SK, consistent=True)
        return _run(item) if item else None

    def all(self, connections: Sequence[str]) -> dict[str, PollRun]:
        by_pk = {keys.leases(c): c for c in connections}
        items = self._t.get_keys([keys.key(pk, keys.POLL_SK) for pk in by_pk])
        return {by_pk[item["pk"]]: _run(item) for item in items}

    def _update(self, connection: str, spec: dict[str, Any]) -> bool:
        used = {k: v for k, v in _NAMES.items() if k in spec["UpdateExpression"] + spec["ConditionExpression"]}
        try:
            self._t.update(keys.key(keys.leases(connection), keys.POLL_SK), ExpressionAttributeNames=used, **spec)
            return True
        except Exception as exc:
            if self._t.conditional_failure(exc):
                return False
            raise


def _run(item: dict[str, Any]) -> PollRun:
    return PollRun.model_validate({k: item.get(k) for k in PollRun.model_fields})
