"""Marketo sandbox data: object schemas (companies, custom objects), the record store and field validation."""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

NOT_UPDATEABLE = {"id", "marketoGUID", "createdAt", "updatedAt"}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    data_type: str = "string"
    length: int | None = None
    updateable: bool = True

    def describe(self, crm_managed: bool = False) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "displayName": self.name, "dataType": self.data_type,
                                 "updateable": self.updateable, "crmManaged": crm_managed}
        if self.length is not None:
            entry["length"] = self.length
        return entry

    def problem(self, value: Any) -> str | None:
        """Why Marketo would reject this value for this field (code 1001), or None."""
        if value is None or value == "":
            return None
        kind = self.data_type
        if kind in ("integer",) and not (isinstance(value, int) and not isinstance(value, bool)):
            if not (isinstance(value, str) and value.lstrip("-").isdigit()):
                return f"Invalid value '{value}' for field '{self.name}' of type integer"
        elif kind in ("currency", "float") and not isinstance(value, int | float):
            return f"Invalid value '{value}' for field '{self.name}' of type {kind}"
        elif kind == "boolean" and not isinstance(value, bool):
            return f"Invalid value '{value}' for field '{self.name}' of type boolean"
        elif kind in ("datetime", "date"):
            try:
                datetime.fromisoformat(str(value).replace("Z", "+00:00"))
            except ValueError:
                return f"Invalid value '{value}' for field '{self.name}' of type {kind}"
        elif isinstance(value, dict | list):
            return f"Invalid value for field '{self.name}' of type {kind}"
        if self.length is not None and isinstance(value, str) and len(value) > self.length:
            return f"Value for field '{self.name}' exceeds maximum length {self.length}"
        return None


def _fields(*specs: tuple[Any, ...]) -> dict[str, FieldSpec]:
    return {s[0]: FieldSpec(*s) for s in specs}


COMPANY_FIELDS = _fields(
    ("id", "integer", None, False), ("externalCompanyId", "string", 100, False), ("company", "string", 255),
    ("website", "url", 255), ("mainPhone", "phone", 255), ("billingStreet", "string", 255),
    ("billingCity", "string", 255), ("billingState", "string", 255), ("billingPostalCode", "string", 255),
    ("billingCountry", "string", 255), ("numberOfEmployees", "integer"), ("annualRevenue", "currency"),
    ("industry", "string", 255), ("sicCode", "string", 40),
    ("createdAt", "datetime", None, False), ("updatedAt", "datetime", None, False),
    ("vismaNumber", "string", 30), ("vismaEntity", "string", 20), ("vismaStatus", "string", 20),
    ("vismaClassId", "string", 30), ("vismaClass", "string", 100), ("vismaPaymentTermsId", "string", 30),
    ("vismaPaymentTerms", "string", 100), ("vismaPaymentStatus", "string", 30), ("vismaCurrency", "string", 3),
    ("vismaCorporateId", "string", 50), ("vismaContactName", "string", 255), ("vismaContactEmail", "email", 255),
    ("vismaLastModified", "datetime"), ("vismaSegment", "string", 50), ("vismaBalance", "currency"),
    ("vismaOverdueAmount", "currency"), ("vismaDunningLevel", "integer"),
)

SUPPLIER_OBJECT = {
    "displayName": "Visma supplier",
    "dedupe_fields": ["vismaKey"],
    "fields": {
        "vismaKey": {"dataType": "string", "length": 100}, "name": {"dataType": "string", "length": 255},
        "vismaNumber": {"dataType": "string", "length": 30}, "vismaStatus": {"dataType": "string", "length": 20},
        "vismaClassId": {"dataType": "string", "length": 30}, "vismaClass": {"dataType": "string", "length": 100},
        "vismaPaymentTerms": {"dataType": "string", "length": 100}, "city": {"dataType": "string", "length": 255},
        "country": {"dataType": "string", "length": 255}, "email": {"dataType": "email", "length": 255},
        "phone": {"dataType": "phone", "length": 255}, "vismaLastModified": {"dataType": "datetime"},
    },
}
REFERENCE_OBJECT = {
    "displayName": "Visma reference data",
    "dedupe_fields": ["vismaRefKey"],
    "fields": {
        "vismaRefKey": {"dataType": "string", "length": 100}, "refType": {"dataType": "string", "length": 40},
        "code": {"dataType": "string", "length": 40}, "description": {"dataType": "string", "length": 255},
        "active": {"dataType": "boolean"},
    },
}
DEFAULT_CUSTOM_OBJECTS = {"vismaSupplier_c": SUPPLIER_OBJECT, "vismaReference_c": REFERENCE_OBJECT}


@dataclass
class ObjectType:
    """A company-like object: its schema, dedupe key and records."""

    name: str
    api_name: str
    id_field: str
    dedupe_fields: list[str]
    fields: dict[str, FieldSpec]
    display_name: str = ""
    searchable: list[list[str]] = field(default_factory=list)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)  # dedupe key -> record

    @classmethod
    def custom(cls, api_name: str, spec: dict[str, Any]) -> ObjectType:
        fields = {"marketoGUID": FieldSpec("marketoGUID", "string", 36, False),
                  "createdAt": FieldSpec("createdAt", "datetime", None, False),
                  "updatedAt": FieldSpec("updatedAt", "datetime", None, False)}
        for name, f in spec["fields"].items():
            fields[name] = FieldSpec(name, f.get("dataType", "string"), f.get("length"), True)
        dedupe = list(spec["dedupe_fields"])
        return cls(name=api_name, api_name=api_name, id_field="marketoGUID", dedupe_fields=dedupe, fields=fields,
                   display_name=spec.get("displayName", api_name), searchable=[dedupe, ["marketoGUID"]])

    def key_of(self, record: dict[str, Any]) -> str | None:
        values = [record.get(f) for f in self.dedupe_fields]
        if any(v is None or v == "" for v in values):
            return None
        return "|".join(str(v) for v in values)

    def describe(self, crm_enabled: bool) -> dict[str, Any]:
        crm = crm_enabled and self.api_name == "companies"
        now = "2024-01-01T00:00:00Z"
        return {"name": self.name, "displayName": self.display_name or self.name, "apiName": self.api_name,
                "description": f"{self.name} object", "createdAt": now, "updatedAt": now, "idField": self.id_field,
                "dedupeFields": self.dedupe_fields, "searchableFields": self.searchable, "state": "approved",
                "fields": [f.describe(crm and f.updateable) for f in self.fields.values()]}


class MarketoStore:
    """Thread-safe records of one sandbox instance."""

    def __init__(self, company_fields: dict[str, Any] | None, custom_objects: dict[str, Any] | None) -> None:
        fields = dict(COMPANY_FIELDS)
        for name, spec in (company_fields or {}).items():
            fields[name] = FieldSpec(name, spec.get("dataType", "string"), spec.get("length"),
                                     spec.get("updateable", True))
        self.lock = threading.RLock()
        self._ids = itertools.count(1001)
        self.objects: dict[str, ObjectType] = {
            "companies": ObjectType(name="Company", api_name="companies", id_field="id",
                                    dedupe_fields=["externalCompanyId"], fields=fields, display_name="Company",
                                    searchable=[["externalCompanyId"], ["id"], ["company"]])}
        customs = DEFAULT_CUSTOM_OBJECTS if custom_objects is None else custom_objects
        for api_name, spec in customs.items():
            self.objects[api_name] = ObjectType.custom(api_name, spec)

    # -- what tests and the demo read ----------------------------------------------------------
    def companies(self) -> list[dict[str, Any]]:
        return self.records("companies")

    def custom_objects(self, api_name: str) -> list[dict[str, Any]]:
        return self.records(api_name)

    def records(self, api_name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(r) for r in self.objects[api_name].records.values()]

    # -- writes ---------------------------------------------------------------------------------
    def upsert(self, obj: ObjectType, key: str, values: dict[str, Any], action: str) -> dict[str, Any]:
        """Apply one validated record; the per-record result (without seq)."""
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        existing = obj.records.get(key)
        if existing is None and action == "updateOnly":
            return _skipped("1004", f"{obj.name} not found")
        if existing is not None and action == "createOnly":
            return _skipped("1005", f"{obj.name} already exists")
        cleaned = {k: (None if v == "" else v) for k, v in values.items()}
        if existing is None:
            ident: Any = next(self._ids) if obj.id_field == "id" else str(uuid.uuid4())
            obj.records[key] = {obj.id_field: ident, **cleaned, "createdAt": now, "updatedAt": now}
            return {obj.id_field: ident, "status": "created"}
        existing.update(cleaned)
        existing["updatedAt"] = now
        return {obj.id_field: existing[obj.id_field], "status": "updated"}


def _skipped(code: str, message: str) -> dict[str, Any]:
    return {"status": "skipped", "reasons": [{"code": code, "message": message}]}


def validate_record(obj: ObjectType, record: Any) -> dict[str, Any] | None:
    """A skipped result for a record Marketo would refuse, or None when it can be written."""
    if not isinstance(record, dict):
        return _skipped("1003", "Invalid record")
    for dedupe in obj.dedupe_fields:
        if record.get(dedupe) in (None, ""):
            return _skipped("1003", f"Value for required field '{dedupe}' not specified")
    for name, value in record.items():
        spec = obj.fields.get(name)
        if spec is None:
            return _skipped("1006", f"Field '{name}' not found")
        if not spec.updateable and name not in obj.dedupe_fields:
            return _skipped("1003", f"Field '{name}' is not updateable")
        problem = spec.problem(value)
        if problem:
            return _skipped("1001", problem)
    return None
