"""Drift: fields edited by hand in Marketo since the connector wrote them.

During a full reconcile each page's mapped records are read back from Marketo by their key (300 a call,
through the client and so inside the shared call budget) and compared field by field with what the
mapping produces now. A record whose Marketo values differ, or that Marketo no longer has, has drifted:
the poller sends it even though the recorded content hash says Marketo holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from ml_connector.marketo.payload import LEADS
from ml_connector.sync.batching import chunked
from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.ports import MarketoRecords
from ml_connector.sync.preview import same_value

READ_BACK_BATCH = 300  # keys per Marketo query (filterValues and batchSize both top out at 300)


def find_drift(marketo: MarketoRecords, messages: Sequence[SyncMessage]) -> set[int]:
    """internalIds of the messages whose mapped fields Marketo does not hold as mapped (or not at all)."""
    if not messages:
        return set()
    first = messages[0]
    fields = sorted({first.dedupe_field, *(f for m in messages for f in m.fields)})
    drifted: set[int] = set()
    for chunk in chunked(list(messages), READ_BACK_BATCH):
        rows = marketo.get_records(first.marketo_object, first.dedupe_field, [m.key for m in chunk], fields)
        held: dict[str, dict[str, Any]] = {}
        for row in rows:
            held.setdefault(_lookup_key(first, row.get(first.dedupe_field)), row)  # duplicates: the first
        for message in chunk:
            found = held.get(_lookup_key(message, message.key))
            if found is None or not holds(found, message.fields):
                drifted.add(message.internal_id)
    return drifted


def holds(row: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Whether Marketo's record has every mapped value (Marketo leaves null fields out of a query's answer)."""
    return all(same_in_marketo(row.get(name), value) for name, value in fields.items())


def same_in_marketo(held: Any, mapped: Any) -> bool:
    """Equal as Marketo stores values: empty is null, numbers by value, booleans and datetimes by meaning."""
    if same_value(held, mapped) or same_value(mapped, held):
        return True
    if isinstance(held, bool) or isinstance(mapped, bool):
        return str(held).lower() == str(mapped).lower()
    held_time, mapped_time = _instant(held), _instant(mapped)
    return held_time is not None and held_time == mapped_time


def _instant(value: Any) -> datetime | None:
    """An ISO-8601 datetime string as a UTC instant to the second (naive is UTC, as Marketo takes it)."""
    if not isinstance(value, str) or len(value) < 19 or value[10:11] != "T":
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC).replace(microsecond=0)


def _lookup_key(message: SyncMessage, value: Any) -> str:
    """Marketo matches a lead's e-mail ignoring case; other keys as text."""
    text = "" if value is None else str(value)
    return text.strip().lower() if message.marketo_object == LEADS and message.dedupe_field == "email" else text
