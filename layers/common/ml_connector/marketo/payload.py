"""The JSON body of a Marketo sync call, encoded once: the batching sizes chunks with it and the client
sends exactly these bytes, so what was measured is what Marketo receives.

Compact separators and raw UTF-8 (``ensure_ascii=False``): JSON text is UTF-8 (RFC 8259 §8.1), which
Marketo reads under ``Content-Type: application/json`` (reference §7: "strings are UTF-8"). ASCII
escaping would make ``ø`` 6 bytes instead of 2 and an emoji 12 instead of 4 against the 1 MB limit.
"""

from __future__ import annotations

import json
from typing import Any

# Marketo answers HTTP 413 for a body over "1 MB" (reference §3, §4); the decimal reading is the stricter.
MAX_BODY_BYTES = 1_000_000
JSON_CONTENT_TYPE = "application/json"
DEFAULT_ACTION = "createOrUpdate"
COMPANIES, LEADS = "companies", "leads"  # mapping targets with their own endpoints; others are custom objects


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sync_envelope(target: str, lookup_field: str = "email", action: str = DEFAULT_ACTION) -> dict[str, Any]:
    """A sync body without its ``input``: leads are matched on ``lookupField`` (reference §7), companies
    and custom objects on their dedupe fields (§5, §6)."""
    if target == LEADS:
        return {"action": action, "lookupField": lookup_field}
    return {"action": action, "dedupeBy": "dedupeFields"}


def sync_body(envelope: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    """The bytes sent for a sync call; ``input`` comes last, so the body is the empty one with the
    records (and the commas between them) inserted before its closing ``]}``."""
    return encode({**envelope, "input": records})


def body_size(envelope: dict[str, Any], record_bytes: int, count: int) -> int:
    """``len(sync_body(envelope, records))`` for ``count`` records of ``record_bytes`` encoded bytes in all,
    without encoding the body."""
    return len(sync_body(envelope, [])) + record_bytes + max(count - 1, 0)
