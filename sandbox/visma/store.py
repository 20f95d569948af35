"""The sandbox company's records: compact rows, generated into full DTOs on demand, under one lock.

A row keeps only what filtering and stamping need (ids, country, stamps, rowversion, the changes made
since generation); the full record is regenerated from the seed when served. That keeps 100k records
in a few tens of MB and makes creating them take well under a few seconds.

Contact persons are rows of their own (``ContactRow``), created per customer on first use (a listing
of all contacts creates them all, about 2 per customer). Seeded contacts keep the generator's stamps;
every change stamps them now with a rowversion from the one database-wide sequence.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from random import Random
from typing import Any, TypeVar

from sandbox.visma.clock import SandboxClock, day_floor, format_stamp, local_offset_minutes, parse_served_stamp
from sandbox.visma.data import (
    CONTACT_ID_BLOCK,
    ENTITIES,
    Generator,
    Invoice,
    Record,
    encode_rowversion,
    internal_id_of,
    number_of,
    rowversion_at,
    standard_offset,
)
from sandbox.visma.query import DateCondition, Filterable, ListFilter, page_slice

FIELD_NAMES = ("number", "name", "status", "corporateId", "vatRegistrationId", "email", "phone")
CONTACT = "contact"  # the contact list's entity name (GET /v1/contact)
CONTACT_FIELDS = ("email", "active", "displayName")  # cached per contact; businessAccount is read live


@dataclass(slots=True)
class Row:
    entity: str
    internal_id: int | None  # None: a raw record without an int internalId (served after the others)
    index: int | None  # generator index; None for raw records
    country: str
    modified_ms: int
    created_ms: int | None
    rowversion: int
    offset: bool  # lastModifiedDateTime served with a local UTC offset
    seq: int
    changes: Record | None = None
    raw: Record | None = None
    cached: tuple[Any, ...] | None = None  # FIELD_NAMES values, dropped on every change
    contacts: list[ContactRow] | None = None  # a customer's contacts in contactId order; None: not yet made

    def sort_key(self) -> tuple[int, int]:
        return (0, self.internal_id) if self.internal_id is not None else (1, self.seq)


@dataclass(slots=True)
class ContactRow:
    contact_id: int
    customer: Row
    k: int | None  # position in Generator.contacts(); None: added by insert_contact (Generator.new_contact)
    modified_ms: int
    rowversion: int
    changes: Record | None = None
    cached: tuple[Any, ...] | None = None  # CONTACT_FIELDS values, dropped on every change
    created_ms: int | None = None  # contacts have no createdDateTime (ListFilter reads the attribute)


R = TypeVar("R", bound=Filterable)


def deep_merge(target: Record, changes: Mapping[str, Any]) -> Record:
    """Merge nested dicts key by key; any other value (None included) replaces."""
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def _entity(entity: str) -> str:
    if entity not in ENTITIES:
        raise ValueError(f"unknown entity {entity!r}; use one of {ENTITIES}")
    return entity


class VismaStore:
    def __init__(self, generator: Generator, clock: SandboxClock, customers: int, suppliers: int) -> None:
        self._gen = generator
        self._clock = clock
        self._lock = threading.RLock()
        self._rows: dict[str, list[Row]] = {e: [] for e in ENTITIES}
        self._by_id: dict[str, dict[int, Row]] = {e: {} for e in ENTITIES}
        self._seeded = {"customer": customers, "supplier": suppliers}
        self._next_index = dict(self._seeded)
        self._seq = 0
        self._rowversion = 0
        self._today_ms = day_floor(clock.now_ms())  # invoices are dated relative to the start day
        self._invoices: list[Invoice] | None = None
        self._invoice_groups: dict[int, list[Invoice]] | None = None
        self._contacts: dict[int, ContactRow] = {}
        self._retired_emails: set[str] = set()
        self._contact_order: list[ContactRow] | None = None  # every contact by contactId, once all exist
        self._deleted: list[tuple[str, int]] = []
        # New contacts get ids after every seeded customer's contactId block.
        self._next_contact_id = CONTACT_ID_BLOCK + internal_id_of("customer", customers) * 4
        for entity, count in self._seeded.items():
            for index in range(count):
                _, core = generator.core(entity, index)
                row = self._new_row(entity, internal_id_of(entity, index), index, core.country,
                                    core.modified_ms, core.created_ms, rowversion_at(core.modified_ms, index))
                self._rows[entity].append(row)
                self._by_id[entity][internal_id_of(entity, index)] = row
                self._rowversion = max(self._rowversion, row.rowversion)

    # -- public helpers (tests, local runs) -----------------------------------------------------
    @property
    def clock(self) -> SandboxClock:
        return self._clock

    def delete(self, entity: str, internal_id: int) -> None:
        """Delete a record (and a customer's contacts): it is no longer served, and later rows move up."""
        with self._lock:
            row = self._row(entity, internal_id)
            self._rows[entity].remove(row)
            del self._by_id[entity][internal_id]
            self._drop_contacts(row)
            self._deleted.append((entity, internal_id))

    def deleted(self) -> list[tuple[str, int]]:
        """(entity, internalId) of every record deleted so far (a test oracle: Marketo may still hold them)."""
        with self._lock:
            return list(self._deleted)

    def records(self, entity: str) -> list[Record]:
        """Every record exactly as served (without metadata), ordered by internalId."""
        with self._lock:
            return [self._materialize(row) for row in self._rows[_entity(entity)]]

    def record(self, entity: str, internal_id: int) -> Record:
        with self._lock:
            return self._materialize(self._row(entity, internal_id))

    def find(self, entity: str, number: str) -> Record:
        """One record by its number, as served (KeyError when there is none)."""
        with self._lock:
            return self._materialize(self._by_number(_entity(entity), number))

    def edit_random(self, n: int, rng_seed: int, entity: str | None = None) -> list[tuple[str, int]]:
        """Edit ``n`` distinct generated records (of both entities when ``entity`` is None)."""
        rng = Random(rng_seed)
        with self._lock:
            entities = ENTITIES if entity is None else (_entity(entity),)
            population = [row for e in entities for row in self._rows[e] if row.raw is None]
            if n > len(population):
                raise ValueError(f"cannot edit {n} records: only {len(population)} are editable")
            chosen = rng.sample(population, n)
            for row in chosen:
                self._edit(row, rng)
            return [(row.entity, row.internal_id) for row in chosen if row.internal_id is not None]

    def insert(self, entity: str, **overrides: Any) -> int:
        """A new generated record, created and modified now; ``overrides`` are deep-merged into it."""
        if "internalId" in overrides:
            raise ValueError("internalId is assigned by the store; use put_raw for a record with a chosen id")
        with self._lock:
            index = self._next_index[_entity(entity)]
            self._next_index[entity] = index + 1
            _, core = self._gen.core(entity, index)
            now = self._clock.now_ms()
            ids = self._by_id[entity]
            internal_id = max(internal_id_of(entity, index), max(ids, default=0) + 1)
            row = self._new_row(entity, internal_id, index, core.country, now, now, self._next_rowversion(now))
            row.changes = deep_merge({}, overrides) if overrides else None
            self._add(row)
            if entity == "customer":  # its contacts are new too: ids after the others, stamped now
                row.contacts = []
                for k in range(len(self._gen.contact_stamps(index))):
                    self._add_contact(ContactRow(self._allocate_contact_id(), row, k, now, self._next_rowversion(now)))
            return internal_id

    def update(self, entity: str, internal_id: int, **changes: Any) -> None:
        """Deep-merge ``changes`` into a record and stamp it now (a raw record keeps its own stamps)."""
        with self._lock:
            row = self._row(entity, internal_id)
            if row.raw is not None:
                deep_merge(row.raw, changes)
                self._stamp_raw(row)
            else:
                self._change(row, changes)

    def put_raw(self, entity: str, raw: Record) -> int | None:
        """Serve ``raw`` verbatim (malformed records included): in internalId order when it has an int
        one (replacing a record with that id), else after every other record. Filters read its stamps
        when they parse, else the moment it was put."""
        with self._lock:
            internal_id = raw.get("internalId")
            key = internal_id if isinstance(internal_id, int) and not isinstance(internal_id, bool) else None
            existing = self._by_id[_entity(entity)].get(key) if key is not None else None
            if existing is not None:
                self._rows[entity].remove(existing)
                self._drop_contacts(existing)
            row = self._new_row(entity, key, None, "", 0, None, 0)
            row.raw = copy.deepcopy(raw)
            self._stamp_raw(row)
            self._add(row)
            return key

    def settle_invoices(self, customer_number: str) -> int:
        """The customer pays: its open invoices close (balance 0, stamped now) while the customer record
        itself does not change. Returns how many invoices closed."""
        with self._lock:
            internal_id = self._by_number("customer", customer_number).internal_id
            now = self._clock.now_ms()
            invoices = self._all_invoices()
            closed = 0
            for position, invoice in enumerate(invoices):
                if invoice.customer_id == internal_id and invoice.status == "Open":
                    invoices[position] = replace(invoice, status="Closed", balance=0.0, modified_ms=now)
                    closed += 1
            self._invoice_groups = None  # regrouped on next use
            return closed

    def contacts(self, customer_number: str) -> list[Record]:
        """The contact persons of a customer as served, edits included (KeyError for an unknown number)."""
        with self._lock:
            return self._materialize_contacts(self._customer_contacts(self._by_number("customer", customer_number)))

    def all_contacts(self) -> list[Record]:
        """Every contact exactly as served (without metadata), in contactId order."""
        with self._lock:
            return self._materialize_contacts(self._all_contact_rows())

    def contact(self, contact_id: int) -> Record:
        """One contact as served (KeyError when there is none)."""
        with self._lock:
            return self._materialize_contacts([self._contact_row(contact_id)])[0]

    def retired_emails(self) -> set[str]:
        """Addresses contacts had before an edit changed them (a test oracle: what Marketo may still hold)."""
        with self._lock:
            return set(self._retired_emails)

    def edit_contacts(self, n: int, rng_seed: int) -> list[int]:
        """Edit ``n`` distinct random contacts (one aspect each: name and e-mail, role, phone, a consent
        flag, active); returns their contactIds."""
        rng = Random(rng_seed)
        with self._lock:
            population = self._all_contact_rows()
            if n > len(population):
                raise ValueError(f"cannot edit {n} contacts: only {len(population)} exist")
            chosen = rng.sample(population, n)
            for row in chosen:
                self._edit_contact(row, rng)
            return [row.contact_id for row in chosen]

    def update_contact(self, contact_id: int, **changes: Any) -> None:
        """Deep-merge ``changes`` into a contact and stamp it now."""
        if "contactId" in changes:
            raise ValueError("contactId is assigned by the store")
        with self._lock:
            self._change_contact(self._contact_row(contact_id), changes)

    def insert_contact(self, customer_number: str, **overrides: Any) -> int:
        """A new generated contact of a customer (contactId after every existing one), stamped now;
        ``overrides`` are deep-merged into it."""
        if "contactId" in overrides:
            raise ValueError("contactId is assigned by the store")
        with self._lock:
            customer = self._by_number("customer", customer_number)
            if customer.index is None:
                raise ValueError(f"customer {customer_number!r} is a raw record and has no generated contacts")
            self._customer_contacts(customer)
            now = self._clock.now_ms()
            row = ContactRow(self._allocate_contact_id(), customer, None, now, self._next_rowversion(now),
                             deep_merge({}, overrides) if overrides else None)
            self._add_contact(row)
            return row.contact_id

    def balances(self, modified: DateCondition | None = None) -> list[Record]:
        with self._lock:
            return [self._balance_dto(row, last) for row, last in self._balance_rows(modified)]

    def invoices(self, *, customer_number: str | None = None, status: str | None = None,
                 due: DateCondition | None = None, modified: DateCondition | None = None) -> list[Record]:
        with self._lock:
            return self._invoice_dtos(self._select_invoices(customer_number, status, due, modified))

    # -- serving (the API handlers) -------------------------------------------------------------
    def page(self, entity: str, flt: ListFilter, bounds: tuple[int, int],
             tie_order: Random | None = None) -> tuple[int, list[Record]]:
        """(filtered total, the records in ``bounds`` of the filtered list); ``entity`` "contact" pages
        the contacts. ``tie_order``: the list by ``lastModifiedDateTime``, ties in an order drawn from it."""
        with self._lock:
            if entity == CONTACT:
                return _page(self._all_contact_rows(), flt, self._contact_fields, self._materialize_contacts,
                             bounds)
            rows = self._rows[_entity(entity)]
            if tie_order is not None:
                draws = {id(row): tie_order.random() for row in rows}
                rows = sorted(rows, key=lambda row: (row.modified_ms, draws[id(row)]))
            return _page(rows, flt, self._fields, lambda rows: [self._materialize(row) for row in rows], bounds)

    def edit_outside(self, entity: str, flt: ListFilter, count: int) -> list[int]:
        """Edit the ``count`` lowest-id records (or contacts) outside the filter window: stamped now
        they enter a ``>``/``>=`` window before the reader's position, shifting the rows after them."""
        with self._lock:
            rng = self._gen.rng("paging-edit", self._rowversion)
            if entity == CONTACT:
                contacts = _first_outside(self._all_contact_rows(), flt, self._contact_fields, count)
                for contact in contacts:
                    self._edit_contact(contact, rng)
                return [contact.contact_id for contact in contacts]
            editable = [row for row in self._rows[_entity(entity)] if row.raw is None]
            chosen = _first_outside(editable, flt, self._fields, count)
            for row in chosen:
                self._edit(row, rng)
            return [row.internal_id for row in chosen if row.internal_id is not None]

    def shift_keeping_count(self, entity: str, flt: ListFilter, served: tuple[int, int]) -> tuple[int, int] | None:
        """Delete a row the reader was served (in ``served`` bounds of the filtered list) and edit the
        highest-id row outside the filter into it: the count stays, the first row of the next page moves up
        onto the page already read. Returns (deleted id, edited id), or None when there is no such pair."""
        with self._lock:
            rows = [row for row in self._rows[_entity(entity)] if row.raw is None]
            matching = [row for row in rows if flt.matches(row, self._fields)]
            page = page_slice(matching, served)
            outside = [row for row in rows if not flt.matches(row, self._fields)]
            if not page or not outside or outside[-1].sort_key() < page[-1].sort_key():
                return None  # an entering row before the boundary would shift rows back: no skip
            victim, entering = page[0], outside[-1]
            assert victim.internal_id is not None and entering.internal_id is not None
            self.delete(entity, victim.internal_id)
            self._edit(entering, self._gen.rng("shift-edit", self._rowversion))
            return victim.internal_id, entering.internal_id

    def balance_page(self, modified: DateCondition | None, bounds: tuple[int, int]) -> tuple[int, list[Record]]:
        with self._lock:
            rows = self._balance_rows(modified)
            return len(rows), [self._balance_dto(row, last) for row, last in page_slice(rows, bounds)]

    def invoice_page(self, bounds: tuple[int, int], **criteria: Any) -> tuple[int, list[Record]]:
        with self._lock:
            selected = self._select_invoices(**criteria)
            return len(selected), self._invoice_dtos(page_slice(selected, bounds))

    # -- rows -------------------------------------------------------------------------------------
    def _new_row(self, entity: str, internal_id: int | None, index: int | None, country: str,
                 modified_ms: int, created_ms: int | None, rowversion: int) -> Row:
        self._seq += 1
        offset = index is not None and self._gen.offset_shaped(entity, index)
        return Row(entity, internal_id, index, country, modified_ms, created_ms, rowversion, offset, self._seq)

    def _add(self, row: Row) -> None:
        bisect.insort(self._rows[row.entity], row, key=Row.sort_key)
        if row.internal_id is not None:
            self._by_id[row.entity][row.internal_id] = row

    def _row(self, entity: str, internal_id: int) -> Row:
        try:
            return self._by_id[_entity(entity)][internal_id]
        except KeyError:
            raise KeyError(f"no {entity} with internalId {internal_id}") from None

    def _next_rowversion(self, now_ms: int) -> int:
        self._rowversion = max(self._rowversion + 1, rowversion_at(now_ms, 0))
        return self._rowversion

    def _edit(self, row: Row, rng: Random) -> None:
        self._change(row, self._gen.edit(row.entity, self._materialize(row), rng))

    def _change(self, row: Row, changes: Mapping[str, Any]) -> None:
        row.changes = deep_merge(row.changes or {}, changes)
        row.modified_ms = self._clock.now_ms()
        row.rowversion = self._next_rowversion(row.modified_ms)
        row.cached = None

    def _stamp_raw(self, row: Row) -> None:
        assert row.raw is not None
        now = self._clock.now_ms()
        modified = parse_served_stamp(row.raw.get("lastModifiedDateTime"))
        row.modified_ms = modified if modified is not None else now
        row.created_ms = parse_served_stamp(row.raw.get("createdDateTime"))
        row.rowversion = self._next_rowversion(now)
        row.cached = None

    def _materialize(self, row: Row) -> Record:
        if row.raw is not None:
            return copy.deepcopy(row.raw)
        assert row.index is not None and row.internal_id is not None
        record = self._gen.record(row.entity, row.index, row.internal_id, number_of(row.entity, row.index))
        if row.changes:
            deep_merge(record, row.changes)
        record["internalId"] = row.internal_id
        if row.offset:
            offset = local_offset_minutes(row.modified_ms, standard_offset(row.country))
            record["lastModifiedDateTime"] = format_stamp(row.modified_ms, offset)
        else:
            record["lastModifiedDateTime"] = self._clock.naive(row.modified_ms)
        if "createdDateTime" in record and row.created_ms is not None:
            record["createdDateTime"] = self._clock.naive(row.created_ms)
        record["timeStamp"] = encode_rowversion(row.rowversion)
        return record

    def _number(self, row: Row) -> Any:
        """The record's number without generating it, unless it was changed or the record is raw."""
        source = row.raw if row.raw is not None else row.changes
        if source is not None and "number" in source:
            return source["number"]
        return number_of(row.entity, row.index) if row.index is not None else None

    def _fields(self, row: Row) -> dict[str, Any]:
        """The filterable fields, cached per row until it changes."""
        if row.cached is None:
            record = self._materialize(row)
            contact = record.get("mainContact")
            contact = contact if isinstance(contact, dict) else {}
            row.cached = (self._number(row), record.get("name"), record.get("status"), record.get("corporateId"),
                          record.get("vatRegistrationId"), contact.get("email"), contact.get("phone1"))
        return dict(zip(FIELD_NAMES, row.cached, strict=True))

    def _by_number(self, entity: str, number: str) -> Row:
        for row in self._rows[entity]:
            if self._number(row) == number:
                return row
        raise KeyError(f"no {entity} with number {number!r}")

    def _customer_ref(self, row: Row | None, *, with_id: bool = False) -> Record:
        fields = self._fields(row) if row is not None else {}
        ref = {"number": fields.get("number"), "name": fields.get("name")}
        return {"internalId": row.internal_id if row else None, **ref} if with_id else ref

    # -- contacts -----------------------------------------------------------------------------------
    def _customer_contacts(self, customer: Row) -> list[ContactRow]:
        """A customer's contact rows, made from the generator on first use (seeded stamps kept)."""
        if customer.contacts is None:
            customer.contacts = []
            if customer.index is not None and customer.internal_id is not None:
                for k, modified in enumerate(self._gen.contact_stamps(customer.index)):
                    contact_id = CONTACT_ID_BLOCK + customer.internal_id * 4 + k
                    self._add_contact(ContactRow(contact_id, customer, k, modified, rowversion_at(modified, k)))
                    self._rowversion = max(self._rowversion, rowversion_at(modified, k))
                self._contact_order = None  # seeded ids fall between existing ones: re-sort on next use
        return customer.contacts

    def _all_contact_rows(self) -> list[ContactRow]:
        if self._contact_order is None:
            for customer in self._rows["customer"]:
                self._customer_contacts(customer)
            self._contact_order = sorted(self._contacts.values(), key=lambda row: row.contact_id)
        return self._contact_order

    def _contact_row(self, contact_id: int) -> ContactRow:
        if contact_id not in self._contacts and self._contact_order is None:
            customer = self._by_id["customer"].get((contact_id - CONTACT_ID_BLOCK) // 4)
            if customer is not None:
                self._customer_contacts(customer)
        try:
            return self._contacts[contact_id]
        except KeyError:
            raise KeyError(f"no contact with contactId {contact_id}") from None

    def _allocate_contact_id(self) -> int:
        self._next_contact_id = max(self._next_contact_id, max(self._contacts, default=0) + 1)
        contact_id = self._next_contact_id
        self._next_contact_id += 1
        return contact_id

    def _add_contact(self, row: ContactRow) -> None:
        """Register a contact; allocated ids are the highest yet, so the sorted list just grows."""
        self._contacts[row.contact_id] = row
        assert row.customer.contacts is not None
        row.customer.contacts.append(row)
        if self._contact_order is not None:
            self._contact_order.append(row)

    def _drop_contacts(self, customer: Row) -> None:
        for row in customer.contacts or ():
            del self._contacts[row.contact_id]
            self._contact_order = None

    def _edit_contact(self, row: ContactRow, rng: Random) -> None:
        current = self._materialize_contacts([row])[0]
        self._change_contact(row, self._gen.edit_contact(current, row.customer.country, rng))

    def _change_contact(self, row: ContactRow, changes: Mapping[str, Any]) -> None:
        if "email" in changes:
            old = self._materialize_contacts([row])[0].get("email")
            if isinstance(old, str) and old != changes["email"]:
                self._retired_emails.add(old)
        row.changes = deep_merge(row.changes or {}, changes)
        row.modified_ms = self._clock.now_ms()
        row.rowversion = self._next_rowversion(row.modified_ms)
        row.cached = None

    def _materialize_contacts(self, rows: Iterable[ContactRow]) -> list[Record]:
        """Contacts as served; each customer's generated contacts are made once per call."""
        generated: dict[int, list[Record]] = {}
        result = []
        for row in rows:
            customer = row.customer
            assert customer.index is not None and customer.internal_id is not None
            number = self._number(customer)
            if row.k is None:
                record = self._gen.new_contact(customer.index, row.contact_id, number)
            else:
                if customer.seq not in generated:
                    generated[customer.seq] = self._gen.contacts(customer.index, customer.internal_id, number)
                record = generated[customer.seq][row.k]
            if row.changes:
                deep_merge(record, row.changes)
            record["contactId"] = row.contact_id
            record["lastModifiedDateTime"] = self._clock.naive(row.modified_ms)
            record["timeStamp"] = encode_rowversion(row.rowversion)
            result.append(record)
        return result

    def _contact_fields(self, row: ContactRow) -> Mapping[str, Any]:
        return _ContactFields(self, row)

    def _cache_contact_fields(self, row: ContactRow) -> tuple[Any, ...]:
        """CONTACT_FIELDS of a contact (``active`` as "true"/"false"); a customer's uncached contacts are
        made and cached together."""
        if row.cached is None:
            siblings = [c for c in row.customer.contacts or (row,) if c.cached is None]
            for contact, record in zip(siblings, self._materialize_contacts(siblings), strict=True):
                contact.cached = (record.get("email"), _flag(record.get("active")), record.get("displayName"))
        assert row.cached is not None
        return row.cached

    # -- balances and invoices ------------------------------------------------------------------------
    def _all_invoices(self) -> list[Invoice]:
        """Generated on first use (only runs that ask for invoices pay for them)."""
        if self._invoices is None:
            self._invoices = [
                invoice
                for index in range(self._seeded["customer"])
                for invoice in self._gen.invoices(index, internal_id_of("customer", index), self._today_ms)
            ]
        return self._invoices

    def _invoices_by_customer(self) -> dict[int, list[Invoice]]:
        if self._invoice_groups is None:
            grouped: dict[int, list[Invoice]] = defaultdict(list)
            for invoice in self._all_invoices():
                grouped[invoice.customer_id].append(invoice)
            self._invoice_groups = dict(grouped)
        return self._invoice_groups

    def _select_invoices(self, customer_number: str | None = None, status: str | None = None,
                         due: DateCondition | None = None, modified: DateCondition | None = None) -> list[Invoice]:
        customer_id: int | None = None
        if customer_number is not None:
            try:
                customer_id = self._by_number("customer", customer_number).internal_id
            except KeyError:
                return []
        return [i for i in self._all_invoices()
                if (customer_id is None or i.customer_id == customer_id)
                and (status is None or i.status == status)
                and (due is None or due.holds(i.due_ms))
                and (modified is None or modified.holds(i.modified_ms))]

    def _invoice_dtos(self, invoices: Iterable[Invoice]) -> list[Record]:
        customers = self._by_id["customer"]
        return [invoice.dto(self._customer_ref(customers.get(invoice.customer_id))) for invoice in invoices]

    def _balance_rows(self, modified: DateCondition | None) -> list[tuple[Row, int]]:
        """Customers with the moment their balance last changed (latest invoice, else creation)."""
        grouped = self._invoices_by_customer()
        result = []
        for row in self._rows["customer"]:
            if row.raw is not None or row.internal_id is None:
                continue
            invoices = grouped.get(row.internal_id, [])
            last = max((i.modified_ms for i in invoices), default=row.created_ms or row.modified_ms)
            if modified is None or modified.holds(last):
                result.append((row, last))
        return result

    def _balance_dto(self, row: Row, last_ms: int) -> Record:
        assert row.index is not None and row.internal_id is not None
        invoices = self._invoices_by_customer().get(row.internal_id, [])
        seeded = row.index < self._seeded["customer"]
        totals = self._gen.balance_totals(row.index) if seeded else dict.fromkeys(
            ("totalOrder", "totalLoan", "totalSalePeriod", "totalSaleYear", "totalDiscountPeriod",
             "totalDiscountYear"), 0.0)
        return {"customer": self._customer_ref(row, with_id=True),
                "balance": round(sum(i.balance for i in invoices if i.status == "Open"), 2),
                **totals, "lastModified": self._clock.naive(last_ms)}


class _ContactFields(Mapping[str, Any]):
    """A contact's filterable fields, read when asked: businessAccount (from the customer row) needs no
    generated record, so a businessAccount filter stays cheap over 200k contacts."""

    def __init__(self, store: VismaStore, row: ContactRow) -> None:
        self._store, self._row = store, row

    def __getitem__(self, key: str) -> Any:
        if key == "businessAccount":
            changes = self._row.changes or {}
            return changes["businessAccount"] if key in changes else self._store._number(self._row.customer)
        if key in CONTACT_FIELDS:
            return self._store._cache_contact_fields(self._row)[CONTACT_FIELDS.index(key)]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(("businessAccount", *CONTACT_FIELDS))

    def __len__(self) -> int:
        return 1 + len(CONTACT_FIELDS)


def _page(rows: list[R], flt: ListFilter, fields: Callable[[R], Mapping[str, Any]],
          materialize: Callable[[list[R]], list[Record]], bounds: tuple[int, int]) -> tuple[int, list[Record]]:
    matching = rows if flt.is_empty else [row for row in rows if flt.matches(row, fields)]
    return len(matching), materialize(page_slice(matching, bounds))


def _first_outside(rows: Iterable[R], flt: ListFilter, fields: Callable[[R], Mapping[str, Any]],
                   count: int) -> list[R]:
    outside = (row for row in rows if not flt.matches(row, fields))
    return [row for _, row in zip(range(count), outside, strict=False)]


def _flag(value: Any) -> str | None:
    return ("true" if value else "false") if isinstance(value, bool) else None
