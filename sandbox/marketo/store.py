"""The records of one sandbox instance: sync (createOnly / updateOnly / createOrUpdate) and lookup.

A sync call is applied under one lock, record by record in input order, so concurrent writers see
each call as a whole and results line up with the input (``seq``).
"""

from __future__ import annotations

import copy
import itertools
import random
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from sandbox.marketo.errors import Skip
from sandbox.marketo.schema import COMPANY, LEAD_DEFAULTS, LeadSchema, ObjectSchema, lead_schema

Record = dict[str, Any]
Key = tuple[str, ...]


class _Table:
    """Records of one object type in creation order, indexed by id and by dedupe key."""

    def __init__(self, schema: ObjectSchema) -> None:
        self.schema = schema
        self.rows: dict[str, Record] = {}  # str(id field) -> record
        self.by_key: dict[Key, str] = {}  # dedupe key -> str(id field)

    def find(self, dedupe_by: str, key: Key) -> Record | None:
        row_id = key[0] if dedupe_by == "idField" else self.by_key.get(key)
        return self.rows.get(row_id) if row_id is not None else None

    def add(self, record: Record) -> None:
        row_id = str(record[self.schema.id_field])
        self.rows[row_id] = record
        self.by_key[self.key_of(record)] = row_id

    def key_of(self, record: Record) -> Key:
        return tuple(str(record[name]) for name in self.schema.dedupe_fields)

    def remove(self, record: Record) -> None:
        del self.rows[str(record[self.schema.id_field])]
        del self.by_key[self.key_of(record)]


class MarketoStore:
    def __init__(self, schemas: dict[str, ObjectSchema], seed: int = 0, leads: LeadSchema | None = None) -> None:
        self.schemas = schemas
        self.lead_schema = leads or lead_schema()
        self._tables = {name: _Table(schema) for name, schema in schemas.items()}
        self._leads: dict[int, Record] = {}  # id -> lead, in creation order
        self._lock = threading.Lock()
        self._ids = itertools.count(1001)
        self._lead_ids = itertools.count(1)  # leads are numbered apart from companies
        self._rng = random.Random(seed)  # marketoGUIDs are reproducible for a given seed and call order

    # -- what tests, the demo and the local environment read --------------------------------------------
    def companies(self) -> list[Record]:
        return self.records(COMPANY)

    def custom_objects(self, api_name: str) -> list[Record]:
        return self.records(api_name)

    def records(self, api_name: str) -> list[Record]:
        table = self._tables[api_name]
        with self._lock:
            return [copy.deepcopy(row) for row in table.rows.values()]

    def leads(self) -> list[Record]:
        """Every lead, in creation order (copies)."""
        with self._lock:
            return [copy.deepcopy(row) for row in self._leads.values()]

    def lead_by_email(self, email: str) -> Record | None:
        """The first lead (by creation) with this email, matched as Marketo dedupes email: ignoring case."""
        wanted = _lead_key("email", email)
        with self._lock:
            for row in self._leads.values():
                if row.get("email") is not None and _lead_key("email", row["email"]) == wanted:
                    return copy.deepcopy(row)
        return None

    def edit(self, api_name: str, key: Key, changes: Record) -> None:
        """An edit made by hand in Marketo's UI (tests): fields of the record with this dedupe key change."""
        with self._lock:
            row = self._tables[api_name].find("dedupeFields", key)
            if row is None:
                raise KeyError(key)
            row.update(changes)

    def edit_lead(self, email: str, changes: Record) -> None:
        with self._lock:
            wanted = _lead_key("email", email)
            row = next(r for r in self._leads.values() if r.get("email") and _lead_key("email", r["email"]) == wanted)
            row.update(changes)

    def clear(self) -> None:
        with self._lock:
            self._tables = {name: _Table(schema) for name, schema in self.schemas.items()}
            self._leads.clear()

    # -- API operations -------------------------------------------------------------------------------
    def sync(self, api_name: str, inputs: list[Any], action: str, dedupe_by: str) -> list[Record]:
        """One result per input, in input order: ``{seq, <id field>, status}`` or ``{seq, status, reasons}``."""
        table = self._tables[api_name]
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        claimed: set[Key] = set()
        with self._lock:
            return [{"seq": seq, **self._sync_one(table, raw, action, dedupe_by, claimed, now)}
                    for seq, raw in enumerate(inputs)]

    def find(self, api_name: str, fields: list[str], wanted: set[Key]) -> list[Record]:
        """Copies of the records whose ``fields`` values are one of ``wanted``, in creation order."""
        table = self._tables[api_name]
        with self._lock:
            return [copy.deepcopy(row) for row in table.rows.values()
                    if tuple("" if row.get(f) is None else str(row[f]) for f in fields) in wanted]

    def delete(self, api_name: str, inputs: list[Any], delete_by: str) -> list[Record]:
        """Delete Companies / Custom Objects: ``{seq, <id field>, status: deleted}`` per input, or skipped with
        1013 when no record has that key (reference §6: per-record ``deleted`` or ``skipped``)."""
        table = self._tables[api_name]
        with self._lock:
            return [{"seq": seq, **self._delete_one(table, raw, delete_by)} for seq, raw in enumerate(inputs)]

    @staticmethod
    def _delete_one(table: _Table, raw: Any, delete_by: str) -> Record:
        schema = table.schema
        try:
            if not isinstance(raw, dict):
                raise Skip("1003", "Invalid input record: expected a JSON object")
            names = [schema.id_field] if delete_by == "idField" else schema.dedupe_fields
            if any(raw.get(name) in (None, "") for name in names):
                raise Skip("1003", f"Value for required field '{', '.join(names)}' not specified")
            existing = table.find(delete_by, tuple(str(raw[name]) for name in names))
            if existing is None:
                raise Skip("1013", "Record not found")
            table.remove(existing)
            return {schema.id_field: existing[schema.id_field], "status": "deleted"}
        except Skip as skip:
            return skip.result()

    def delete_leads(self, inputs: list[Any]) -> list[Record]:
        """Delete Leads by id: ``{id, status: deleted}`` per input, in input order, or skipped with 1013."""
        results: list[Record] = []
        with self._lock:
            for raw in inputs:
                ident = raw.get("id") if isinstance(raw, dict) else None
                try:
                    lead_id = int(ident) if ident not in (None, "") else None
                except (TypeError, ValueError):
                    lead_id = None
                if lead_id is None:
                    results.append({"status": "skipped", "reasons": [{"code": "1003", "message": "id required"}]})
                elif self._leads.pop(lead_id, None) is None:
                    results.append({"id": lead_id, "status": "skipped",
                                    "reasons": [{"code": "1013", "message": "Lead not found"}]})
                else:
                    results.append({"id": lead_id, "status": "deleted"})
        return results

    # -- sync, one record ---------------------------------------------------------------------------------
    def _sync_one(self, table: _Table, raw: Any, action: str, dedupe_by: str, claimed: set[Key],
                  now: str) -> Record:
        schema = table.schema
        try:
            index, key = schema.lookup(raw, dedupe_by, action)
            key_fields = [schema.id_field] if index == "idField" else schema.dedupe_fields
            if key in claimed:
                # The first record with a key claims it, even when it is skipped for another reason.
                raise Skip("1036", f"Duplicate value for {', '.join(key_fields)}")
            claimed.add(key)
            values = schema.clean(raw, key_fields)
            existing = table.find(index, key)
            if existing is None:
                return self._create(table, values, action, index, now)
            return self._update(table, existing, values, action, now)
        except Skip as skip:
            return skip.result()

    def _create(self, table: _Table, values: Record, action: str, index: str, now: str) -> Record:
        schema = table.schema
        if action == "updateOnly" or index == "idField":  # an id can only name an existing record
            raise Skip("1004", f"{schema.display_name} not found")
        ident: int | str = (next(self._ids) if schema.id_field == "id"
                            else str(uuid.UUID(int=self._rng.getrandbits(128), version=4)))
        table.add({schema.id_field: ident, **values, "createdAt": now, "updatedAt": now})
        return {schema.id_field: ident, "status": "created"}

    @staticmethod
    def _update(table: _Table, existing: Record, values: Record, action: str, now: str) -> Record:
        schema = table.schema
        if action == "createOnly":
            raise Skip("1005", f"{schema.display_name} already exists")
        values.pop(schema.id_field, None)
        existing.update(values)
        existing["updatedAt"] = now  # even when nothing changed: Marketo still answers "updated"
        return {schema.id_field: existing[schema.id_field], "status": "updated"}

    # -- leads (reference §7) -----------------------------------------------------------------------------
    def sync_leads(self, inputs: list[Any], action: str, lookup_field: str) -> list[Record]:
        """One result per input, in input order and without ``seq``: ``{id, status}`` or ``{status, reasons}``.

        Records are applied one after another, so a later record in the call sees what an earlier one
        wrote (the same email twice creates once, then updates)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        with self._lock:
            return [self._sync_lead(raw, action, lookup_field, now) for raw in inputs]

    def find_leads(self, field: str, values: list[str]) -> list[Record]:
        """Copies of the leads whose ``field`` is one of ``values`` (email ignoring case), in creation order."""
        wanted = {_lead_key(field, value) for value in values}
        with self._lock:
            return [copy.deepcopy(row) for row in self._leads.values()
                    if row.get(field) is not None and _lead_key(field, row[field]) in wanted]

    def _sync_lead(self, raw: Any, action: str, lookup_field: str, now: str) -> Record:
        try:
            if not isinstance(raw, dict):
                raise Skip("1003", "Invalid input record: expected a JSON object")
            if action == "createDuplicate":  # no lookup: always a new lead
                return self._create_lead(self.lead_schema.clean(raw, []), now)
            if lookup_field == "id" and action != "updateOnly":
                raise Skip("1003", f"lookupField 'id' is not allowed with action {action}")
            if "id" in raw and lookup_field != "id":
                raise Skip("1003", "Invalid data: 'id' is only a lookup key, with updateOnly")
            if raw.get(lookup_field) in (None, ""):
                raise Skip("1003", f"Value for lookup field '{lookup_field}' not specified")
            values = self.lead_schema.clean(raw, [lookup_field])
            key = _lead_key(lookup_field, raw[lookup_field])
            matches = [row for row in self._leads.values()
                       if row.get(lookup_field) is not None and _lead_key(lookup_field, row[lookup_field]) == key]
            if action == "createOnly":
                if matches:
                    raise Skip("1005", "Lead already exists")
                return self._create_lead(values, now)
            if len(matches) > 1:
                raise Skip("1007", "Multiple lead match lookup criteria")
            if not matches:
                if action == "updateOnly" or lookup_field == "id":
                    raise Skip("1004", "Lead not found")
                return self._create_lead(values, now)
            existing = matches[0]
            values.pop("id", None)
            existing.update(values)  # stored as sent: unsubscribed false re-subscribes the person
            existing["updatedAt"] = now
            return {"id": existing["id"], "status": "updated"}
        except Skip as skip:
            return skip.result()

    def _create_lead(self, values: Record, now: str) -> Record:
        ident = next(self._lead_ids)
        defaults = {name: value for name, value in LEAD_DEFAULTS.items() if name in self.lead_schema.fields}
        self._leads[ident] = {"id": ident, **defaults, **values, "createdAt": now, "updatedAt": now}
        return {"id": ident, "status": "created"}


def _lead_key(field: str, value: Any) -> str:
    """How a lookup or filter value is compared: email ignoring case and surrounding blanks (**inference**
    from Marketo treating ``Jo@X.com`` and ``jo@x.com`` as one person), anything else as its text."""
    text = str(value)
    return text.strip().lower() if field == "email" else text
