"""Dry run: read Visma exactly as the next cycle would and show what Marketo would get, writing nothing.

The preview runs the poller with ``dry_run=True`` and this sink: no SQS message, no enqueue marker,
no quarantine entry, no watermark move. For each record it looks up what Marketo holds now and
reports ``create``, ``update`` (with each changed field, before -> after) or ``unchanged``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel

from ml_connector.config import VismaEntity
from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.ports import Delivery

# (marketo_object, dedupe_field, keys, fields) -> {key: current Marketo record}
MarketoLookup = Callable[[str, str, list[str], list[str]], dict[str, dict[str, Any]]]


class FieldChange(BaseModel):
    before: Any
    after: Any


class PreviewItem(BaseModel):
    connection: str
    entity: VismaEntity
    internal_id: int
    key: str
    marketo_object: str
    action: Literal["create", "update", "unchanged"]
    changes: dict[str, FieldChange] = {}


def same_value(before: Any, after: Any) -> bool:
    """Marketo's view of equality: empty and null are the same, numbers compare by value."""
    if before in (None, "") and after in (None, ""):
        return True
    if isinstance(after, int | float) and not isinstance(after, bool) and before is not None:
        try:
            return float(before) == float(after)
        except (TypeError, ValueError):
            return False
    return bool(before == after)


class PreviewSink:
    def __init__(self, lookup: MarketoLookup) -> None:
        self._lookup = lookup
        self.items: list[PreviewItem] = []

    def deliver(self, connection: str, entity: VismaEntity, messages: list[SyncMessage],
                force: frozenset[int] = frozenset()) -> Delivery:
        first = messages[0]
        field_names = sorted({f for m in messages for f in m.fields})
        current = self._lookup(first.marketo_object, first.dedupe_field, [m.key for m in messages], field_names)
        for message in messages:
            self.items.append(self._compare(message, current.get(message.key)))
        return Delivery(len(messages), 0)

    def flush(self) -> None:
        """Nothing is held back: a preview only compares."""

    @staticmethod
    def _compare(message: SyncMessage, existing: dict[str, Any] | None) -> PreviewItem:
        base = {"connection": message.connection, "entity": message.entity, "internal_id": message.internal_id,
                "key": message.key, "marketo_object": message.marketo_object}
        if existing is None:
            changes = {f: FieldChange(before=None, after=v) for f, v in message.fields.items() if v is not None}
            return PreviewItem(**base, action="create", changes=changes)
        changes = {f: FieldChange(before=existing.get(f), after=v) for f, v in message.fields.items()
                   if not same_value(existing.get(f), v)}
        return PreviewItem(**base, action="update" if changes else "unchanged", changes=changes)

    def counts(self) -> dict[str, int]:
        counts = {"create": 0, "update": 0, "unchanged": 0}
        for item in self.items:
            counts[item.action] += 1
        return counts
