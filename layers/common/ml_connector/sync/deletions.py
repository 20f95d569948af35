"""Deletions: records written to Marketo that a full read no longer finds in Visma.

What was written (the ``REC#`` partition) is streamed by a paged read and compared with the ids the full
read saw; each record found gone is handled by the mapping's ``deletions`` mode, 300 at a time:

- ``keep``: counted and reported; Marketo keeps the record as it is.
- ``flag``: one field (e.g. ``vismaStatus`` = ``deleted``) is set through the sync queue, as a message at the
  version Marketo holds, so the writer's call budget, idempotency and record state apply as to any write.
- ``delete``: Marketo's delete endpoint (companies, custom objects; leads by Marketo id, only when the mapping
  chose it). A record Marketo cannot find (1013) is already gone; other refusals are retried next reconcile.

A handled record is marked gone, so the next reconcile does not act on it again, unless Marketo no longer
holds what the action left (a stale message in flight written after it: a record deleted is recorded as
written again, a flag's content replaced); a marked record that a later full read finds in Visma again is
unmarked (and, as its recorded content no longer matches, sent again).
"""

from __future__ import annotations

import bisect
import hashlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from datetime import datetime
from itertools import islice

from ml_connector.config import VismaEntity
from ml_connector.marketo.models import SyncResult
from ml_connector.marketo.payload import LEADS
from ml_connector.observability import logger
from ml_connector.state import RecordState, State, parse_utc_iso
from ml_connector.sync.mapping import EntityMapping
from ml_connector.sync.messages import SyncMessage, content_hash
from ml_connector.sync.ports import MarketoRecords, Outbox

BATCH = 300  # records per Marketo delete call, and per flag send
NOT_FOUND = "1013"


class IdSet:
    """A set of internalIds as one sorted array of 8-byte integers: 100,000 ids take 800 KB, not a set's ~6 MB."""

    def __init__(self, ids: Iterable[int]) -> None:
        self._ids = array("q", sorted(set(ids)))

    def __contains__(self, internal_id: object) -> bool:
        if not isinstance(internal_id, int):
            return False
        index = bisect.bisect_left(self._ids, internal_id)
        return index < len(self._ids) and self._ids[index] == internal_id

    def __iter__(self) -> Iterator[int]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class Deletions:
    def __init__(self, state: State, outbox: Outbox, marketo: MarketoRecords) -> None:
        self._state = state
        self._outbox = outbox
        self._marketo = marketo

    def reconcile(self, connection: str, entity: VismaEntity, mapping: EntityMapping, seen: IdSet,
                  now: datetime, live_keys: AbstractSet[int] = frozenset()) -> Counter[str]:
        """Handle the records gone from Visma since the last reconcile; the counts for the report.
        ``live_keys``: ``key_hash`` of the keys the full read's records have (for keys built from the record)."""
        reconciles = self._state.reconciles
        marked = IdSet(reconciles.gone(connection, entity))
        counts: Counter[str] = Counter()
        back = [i for i in marked if i in seen]
        if back:
            reconciles.unmark_gone(connection, entity, back)
            counts["reappeared"] += len(back)
        gone, in_use = self._gone(connection, entity, mapping, seen, marked)
        in_use |= live_keys
        while batch := list(islice(gone, BATCH)):
            again = sum(1 for r in batch if r.internal_id in marked)
            counts["deleted_in_visma"] += len(batch) - again
            counts["acted_again"] += again
            shared = [r.internal_id for r in batch if r.written_key and key_hash(r.written_key) in in_use]
            counts["key_in_use"] += len(shared)
            handled = self._handle(connection, entity, mapping, [r for r in batch if r.internal_id not in shared],
                                   counts)
            reconciles.mark_gone(connection, entity, [*shared, *handled], mapping.deletions.mode, now)
        return counts

    def _gone(self, connection: str, entity: VismaEntity, mapping: EntityMapping, seen: IdSet, marked: IdSet
              ) -> tuple[Iterator[RecordState], set[int]]:
        """The written records not seen (and not marked before), streamed; and the keys records still in Visma
        hold. A key built from the record (a lead's e-mail) can be shared: a record gone from Visma whose key
        another one still has is left alone in Marketo (flagging or deleting it would hit the live one). Such
        mappings need the live keys first, so their gone records are collected in one paged read."""
        written = self._state.reconciles.written(connection, entity)
        if mapping.key_source is None:  # keys carry the internalId: never shared
            return (r for r in written if r.internal_id not in seen and not self._done(r, marked, mapping)), set()
        gone: list[RecordState] = []
        in_use: set[int] = set()
        for record in written:
            if record.internal_id in seen:
                if record.written_key:
                    in_use.add(key_hash(record.written_key))
            elif not self._done(record, marked, mapping):
                gone.append(record)
        return iter(gone), in_use

    @staticmethod
    def _done(record: RecordState, marked: IdSet, mapping: EntityMapping) -> bool:
        """Marked gone by an earlier reconcile, and Marketo still holds what this mode's action left."""
        if record.internal_id not in marked:
            return False
        rule = mapping.deletions
        if rule.mode == "flag":
            return record.written_hash == content_hash({str(rule.field): rule.value})
        return rule.mode == "keep"  # delete: a record recorded as written again was written after the delete

    def _handle(self, connection: str, entity: VismaEntity, mapping: EntityMapping, batch: list[RecordState],
                counts: Counter[str]) -> list[int]:
        """Act on one batch by the mapping's mode; the ids now handled (to mark gone)."""
        mode = mapping.deletions.mode
        if mode == "keep":
            counts["kept"] += len(batch)
            return [r.internal_id for r in batch]
        identified = [r for r in batch if r.written_key and r.written_modified_at]
        counts["unidentified"] += len(batch) - len(identified)  # written before keys were recorded: left as is
        if mode == "flag":
            self._outbox.send([flag_message(connection, entity, mapping, r) for r in identified])
            counts["flagged"] += len(identified)
            return [r.internal_id for r in batch]
        removed = self._delete(mapping, identified, counts)
        self._state.reconciles.forget_written(connection, entity, removed)
        return [r.internal_id for r in batch if not (r.written_key and r.written_modified_at)] + removed

    def _delete(self, mapping: EntityMapping, records: list[RecordState], counts: Counter[str]) -> list[int]:
        """Delete in Marketo; the ids Marketo no longer holds (deleted now, or not found: already gone)."""
        if not records:
            return []
        if mapping.target == LEADS:
            results = self._delete_leads(mapping, records)
        else:
            results = self._marketo.delete_records(mapping.target, mapping.dedupe_field,
                                                   [str(r.written_key) for r in records])
        by_seq = {r.seq: r for r in results}
        removed = []
        for seq, record in enumerate(records):
            result = by_seq.get(seq)
            outcome = _outcome(result)
            counts[outcome] += 1
            if outcome != "delete_failed":
                removed.append(record.internal_id)
            else:
                logger.warning("Marketo did not delete a record; the next reconcile tries again",
                               extra={"internal_id": record.internal_id, "target": mapping.target,
                                      "reasons": [r.model_dump() for r in result.reasons] if result else None})
        return removed

    def _delete_leads(self, mapping: EntityMapping, records: list[RecordState]) -> list[SyncResult]:
        """Leads are deleted by Marketo id; a lead written without one recorded is looked up by its key."""
        missing = [str(r.written_key) for r in records if not r.marketo_id]
        found: dict[str, int] = {}
        if missing:
            for row in self._marketo.get_records(LEADS, mapping.dedupe_field, missing, [mapping.dedupe_field]):
                found.setdefault(str(row.get(mapping.dedupe_field) or "").lower(), int(row["id"]))
        ids = [int(r.marketo_id) if r.marketo_id else found.get(str(r.written_key).lower()) for r in records]
        known = [(seq, i) for seq, i in enumerate(ids) if i is not None]
        results = self._marketo.delete_leads([i for _, i in known]) if known else []
        mapped = [r.model_copy(update={"seq": seq}) for (seq, _), r in zip(known, results, strict=False)]
        absent = [SyncResult(seq=seq, status="skipped", reasons=[{"code": NOT_FOUND, "message": "no such lead"}])
                  for seq, i in enumerate(ids) if i is None]
        return mapped + absent


def key_hash(key: str) -> int:
    """A Marketo key as 8 bytes, compared as Marketo matches e-mail (ignoring case and surrounding blanks):
    the keys of 100,000 records held as hashes, not strings."""
    digest = hashlib.blake2b(key.strip().lower().encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _outcome(result: SyncResult | None) -> str:
    if result is not None and result.status == "deleted":
        return "deleted_in_marketo"
    if result is not None and any(r.code == NOT_FOUND for r in result.reasons):
        return "already_gone"
    return "delete_failed"


def flag_message(connection: str, entity: VismaEntity, mapping: EntityMapping, record: RecordState) -> SyncMessage:
    """The flag as a sync message at the version Marketo holds: the writer's version guard lets it through (not
    older), and a record that reappears in Visma later has a newer version and is written over it."""
    rule = mapping.deletions
    assert rule.field is not None and record.written_key and record.written_modified_at
    return SyncMessage.build(
        # No number is recorded with a write; should a race flag it for repair, Visma answers 404 for this one.
        connection=connection, entity=entity, internal_id=record.internal_id, number=f"deleted-{record.internal_id}",
        marketo_object=mapping.target, dedupe_field=mapping.dedupe_field, key=record.written_key,
        modified_at=parse_utc_iso(record.written_modified_at), visma_timestamp=record.written_ts or "",
        fields={rule.field: rule.value})
