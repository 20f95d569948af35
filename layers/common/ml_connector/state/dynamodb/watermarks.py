"""Per connection and entity one ``WM#`` item: the watermark, the start of the last complete poll, the last deep
sweep and that poll's summary. A complete poll writes them together (one write unit, not three), and the next
poll reads them together."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.models import WatermarkEntry, parse_utc_iso, utc_iso
from ml_connector.state.ports import complete_each

_WATERMARK_FORWARD = "(attribute_not_exists(watermark) OR watermark <= :w)"
_POLLED_FORWARD = "(attribute_not_exists(polledAt) OR polledAt <= :p)"


class DynamoWatermarks:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def get(self, connection: str, entity: str) -> datetime | None:
        item = self._t.get(keys.watermarks(connection), entity)  # eventually consistent: see ``entry``
        return parse_utc_iso(item["watermark"]) if item and item.get("watermark") else None

    def entry(self, connection: str, entity: str) -> WatermarkEntry | None:
        # Eventually consistent, at half the price: the item was written by the last complete poll of the entity
        # (or reference sync), one poll at a time under the connection's lease and a schedule tick or more ago. A
        # stale copy could only widen the window (an older watermark) or make a sweep or a reference sync due
        # early: more read, nothing missed.
        item = self._t.get(keys.watermarks(connection), entity)
        if item is None:
            return None
        entry = _entry(item)
        if entry.watermark and not entry.swept_at:  # written before the sweep time moved here: SWEEP# has it
            entry.swept_at = _legacy_sweep(self._t, connection, entity)
        return entry

    def advance(self, connection: str, entity: str, watermark: datetime, summary: dict[str, Any]) -> None:
        self._forward(connection, entity, "SET watermark = :w, lastCycle = :c, updatedAt = :u", _WATERMARK_FORWARD,
                      {":w": utc_iso(watermark), ":c": _summary(summary)})

    def polled(self, connection: str, entity: str, started: datetime, summary: dict[str, Any]) -> None:
        self._forward(connection, entity, "SET polledAt = :p, lastCycle = :c, updatedAt = :u", _POLLED_FORWARD,
                      {":p": utc_iso(started), ":c": _summary(summary)})

    def swept(self, connection: str, entity: str, at: datetime) -> None:
        self._forward(connection, entity, "SET sweptAt = :s", "(attribute_not_exists(sweptAt) OR sweptAt <= :s)",
                      {":s": utc_iso(at)}, stamp=False)

    def complete(self, connection: str, entity: str, started: datetime, watermark: datetime | None, *,
                 swept: bool, summary: dict[str, Any]) -> None:
        sets, conditions = ["polledAt = :p", "lastCycle = :c", "updatedAt = :u"], [_POLLED_FORWARD]
        values = {":p": utc_iso(started), ":c": _summary(summary)}
        if watermark is not None:
            sets.append("watermark = :w")
            conditions.append(_WATERMARK_FORWARD)
            values[":w"] = utc_iso(watermark)
        if swept:
            sets.append("sweptAt = :p")
        if self._forward(connection, entity, "SET " + ", ".join(sets), " AND ".join(conditions), values):
            return
        # A later poll recorded one of them already (this one finished late): each still moves forward on its own.
        complete_each(self, connection, entity, started, watermark, swept=swept, summary=summary)

    def entries(self, connection: str) -> dict[str, WatermarkEntry]:
        return {i["sk"]: _entry(i) for i in self._t.query(keys.watermarks(connection))}

    def _forward(self, connection: str, entity: str, expression: str, condition: str, values: dict[str, Any], *,
                 stamp: bool = True) -> bool:
        """One conditional update of the entity's item; False when its condition failed (nothing written)."""
        stamped = {**values, ":u": utc_iso(datetime.now(UTC))} if stamp else values
        try:
            self._t.update(keys.key(keys.watermarks(connection), entity), UpdateExpression=expression,
                           ConditionExpression=condition, ExpressionAttributeValues=stamped)
            return True
        except Exception as exc:
            if not self._t.conditional_failure(exc):
                raise
            return False


class DynamoSweeps:
    """When each entity's window was last read deep: ``sweptAt`` on its ``WM#`` item (``SWEEP#`` before)."""

    def __init__(self, table: StateTable) -> None:
        self._watermarks = DynamoWatermarks(table)

    def last(self, connection: str, entity: str) -> datetime | None:
        entry = self._watermarks.entry(connection, entity)
        return parse_utc_iso(entry.swept_at) if entry and entry.swept_at else None

    def done(self, connection: str, entity: str, at: datetime) -> None:
        self._watermarks.swept(connection, entity, at)


def _legacy_sweep(table: StateTable, connection: str, entity: str) -> str | None:
    item = table.get(keys.sweeps(connection), entity)
    return str(item["at"]) if item and item.get("at") else None


def _summary(summary: dict[str, Any]) -> str:
    return json.dumps(summary, default=str)


def _entry(item: dict[str, Any]) -> WatermarkEntry:
    return WatermarkEntry(watermark=item.get("watermark"),
                          last_cycle=json.loads(item["lastCycle"]) if item.get("lastCycle") else None,
                          updated_at=item.get("updatedAt"), polled_at=item.get("polledAt"),
                          swept_at=item.get("sweptAt"))
