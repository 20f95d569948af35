from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.models import WatermarkEntry, parse_utc_iso, utc_iso


class DynamoWatermarks:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def get(self, connection: str, entity: str) -> datetime | None:
        item = self._t.get(keys.watermarks(connection), entity, consistent=True)
        return parse_utc_iso(item["watermark"]) if item and item.get("watermark") else None

    def advance(self, connection: str, entity: str, watermark: datetime, summary: dict[str, Any]) -> None:
        value = utc_iso(watermark)
        try:
            self._t.update(  # an update, not a put: the item also holds the last complete poll
                keys.key(keys.watermarks(connection), entity),
                UpdateExpression="SET watermark = :w, lastCycle = :c, updatedAt = :u",
                ConditionExpression="attribute_not_exists(watermark) OR watermark <= :w",
                ExpressionAttributeValues={":w": value, ":c": json.dumps(summary, default=str),
                                           ":u": utc_iso(datetime.now(UTC))},
            )
        except Exception as exc:
            if not self._t.conditional_failure(exc):
                raise

    def polled(self, connection: str, entity: str, started: datetime, summary: dict[str, Any]) -> None:
        value = utc_iso(started)
        try:
            self._t.update(
                keys.key(keys.watermarks(connection), entity),
                UpdateExpression="SET polledAt = :p, lastCycle = :c, updatedAt = :u",
                ConditionExpression="attribute_not_exists(polledAt) OR polledAt <= :p",
                ExpressionAttributeValues={":p": value, ":c": json.dumps(summary, default=str),
                                           ":u": utc_iso(datetime.now(UTC))})
        except Exception as exc:
            if not self._t.conditional_failure(exc):
                raise

    def entries(self, connection: str) -> dict[str, WatermarkEntry]:
        return {i["sk"]: WatermarkEntry(watermark=i.get("watermark"),
                                        last_cycle=json.loads(i["lastCycle"]) if i.get("lastCycle") else None,
                                        updated_at=i.get("updatedAt"), polled_at=i.get("polledAt"))
                for i in self._t.query(keys.watermarks(connection))}
