"""Object schemas (Company and custom object types), their describe output and per-value validation.

A record is refused field by field the way Marketo reports it (reference §3b): unknown field 1006,
non-updateable field 1003, bad value or too long 1001. Accepted values are normalised to what Marketo
would store (integers as int, datetimes as UTC ``YYYY-MM-DDTHH:MM:SSZ``, ``""`` as null).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sandbox.marketo.errors import Skip

COMPANY = "company"  # the store's name for the Company object; custom object API names end in "_c"
SCHEMA_TIME = "2024-01-15T08:00:00Z"  # when the sandbox's object types were "created"


def display_name(name: str) -> str:
    """``vismaPaymentTerms`` -> ``Visma Payment Terms``, as Marketo shows API names in the UI."""
    return " ".join(part.capitalize() for part in re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", name)) or name


@dataclass(frozen=True)
class FieldSpec:
    name: str
    data_type: str = "string"
    length: int | None = None
    updateable: bool = True
    label: str | None = None

    @classmethod
    def from_dict(cls, name: str, spec: dict[str, Any], updateable: bool = True) -> FieldSpec:
        return cls(name, spec.get("dataType", "string"), spec.get("length"), bool(spec.get("updateable", updateable)),
                   spec.get("displayName"))

    def describe(self, crm_managed: bool) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self.name, "displayName": self.label or display_name(self.name),
                                 "dataType": self.data_type, "updateable": self.updateable, "crmManaged": crm_managed}
        if self.length is not None:
            entry["length"] = self.length
        return entry

    def clean(self, value: Any) -> Any:
        """The value Marketo would store; raises Skip(1001) for a value it refuses."""
        if value is None or value == "":
            return None  # reference §5: null or "" writes null
        try:
            cleaned = self._coerce(value)
        except (TypeError, ValueError):
            raise Skip("1001", f"Invalid value '{value}' for field '{self.name}' of type {self.data_type}") from None
        if self.length is not None and isinstance(cleaned, str) and len(cleaned) > self.length:
            raise Skip("1001", f"Value for field '{self.name}' exceeds maximum length {self.length}")
        return cleaned

    def _coerce(self, value: Any) -> Any:
        if isinstance(value, dict | list):
            raise TypeError(self.data_type)
        convert = CONVERTERS.get(self.data_type, _text)
        return convert(value)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise ValueError("integer")


def _number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise TypeError("number")
    number = value if isinstance(value, int | float) else float(str(value))
    if not math.isfinite(number):
        raise ValueError("number")
    return number


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("true", "false"):
        return str(value).lower() == "true"
    raise ValueError("boolean")


def _datetime(value: Any) -> str:
    """ISO-8601 only; naive values are taken as UTC. Marketo answers datetimes in UTC with a Z."""
    if not isinstance(value, str):
        raise TypeError("datetime")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _date(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("date")
    return date.fromisoformat(value[:10]).isoformat()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        raise TypeError("string")
    return str(value)  # JSON numbers sent to string fields are stored as their text


CONVERTERS = {"integer": _integer, "currency": _number, "float": _number, "double": _number,
              "boolean": _boolean, "datetime": _datetime, "date": _date}


@dataclass
class ObjectSchema:
    """Company or one custom object type: fields, id field, dedupe key and searchable fields."""

    api_name: str
    name: str
    display_name: str
    plural_name: str
    id_field: str
    dedupe_fields: list[str]
    searchable: list[list[str]]
    fields: dict[str, FieldSpec]
    description: str = ""
    id_field_actions: frozenset[str] = frozenset({"updateOnly"})  # actions allowed with dedupeBy=idField
    crm_fields: frozenset[str] = field(default_factory=frozenset)  # fields a native CRM sync would own

    @property
    def is_company(self) -> bool:
        return self.api_name == COMPANY

    def filterable(self, name: str) -> bool:
        return [name] in self.searchable or name in self.dedupe_fields or name == self.id_field

    def metadata(self, crm_enabled: bool, with_fields: bool = True) -> dict[str, Any]:
        """An ``ObjectMetaData`` entry (describe and list endpoints)."""
        meta: dict[str, Any] = {
            "name": self.name, "displayName": self.display_name, "pluralName": self.plural_name,
            "apiName": self.api_name, "description": self.description, "createdAt": SCHEMA_TIME,
            "updatedAt": SCHEMA_TIME, "idField": self.id_field, "dedupeFields": list(self.dedupe_fields),
            "searchableFields": [list(s) for s in self.searchable], "relationships": [], "state": "approved",
            "version": "approved"}
        if with_fields:
            meta["fields"] = [spec.describe(crm_enabled and spec.name in self.crm_fields)
                              for spec in self.fields.values()]
        return meta

    # -- input validation ---------------------------------------------------------------------------
    def lookup(self, record: Any, dedupe_by: str, action: str) -> tuple[str, tuple[str, ...]]:
        """Which index a sync input is looked up in and its key there; Skip(1003) when it has none."""
        if not isinstance(record, dict):
            raise Skip("1003", "Invalid input record: expected a JSON object")
        if dedupe_by == "idField":
            if action not in self.id_field_actions:
                raise Skip("1003", f"dedupeBy idField is not allowed with action {action}")
            names = [self.id_field]
        else:
            names = self.dedupe_fields
        for name in names:
            if record.get(name) in (None, ""):
                raise Skip("1003", f"Value for required field '{name}' not specified")
        return dedupe_by, tuple(str(record[name]) for name in names)

    def clean(self, record: dict[str, Any], key_fields: list[str]) -> dict[str, Any]:
        """The record's values as Marketo would store them; Skip(1006/1003/1001) for the first problem."""
        return clean_record(self.fields, record, key_fields)


def clean_record(fields: dict[str, FieldSpec], record: dict[str, Any], key_fields: list[str]) -> dict[str, Any]:
    """A sync input's values as Marketo would store them: unknown field 1006, a non-updateable field
    other than the record's key 1003, a bad value 1001 (the first problem found)."""
    cleaned = {}
    for name, value in record.items():
        spec = fields.get(name)
        if spec is None:
            raise Skip("1006", f"Field '{name}' not found")
        if not spec.updateable and name not in key_fields:
            raise Skip("1003", f"Field '{name}' is not updateable")
        cleaned[name] = spec.clean(value)
    return cleaned


# -- the schemas the sandbox ships ------------------------------------------------------------------

def _specs(rows: list[tuple[Any, ...]]) -> dict[str, FieldSpec]:
    return {row[0]: FieldSpec(*row) for row in rows}


SYSTEM_TIMES = [("createdAt", "datetime", None, False), ("updatedAt", "datetime", None, False)]
COMPANY_FIELDS = _specs([
    ("id", "integer", None, False), ("externalCompanyId", "string", 100, False), ("company", "string", 255),
    ("website", "url", 255), ("mainPhone", "phone", 255), ("billingStreet", "string", 255),
    ("billingCity", "string", 255), ("billingState", "string", 255), ("billingPostalCode", "string", 255),
    ("billingCountry", "string", 255), ("numberOfEmployees", "integer"), ("annualRevenue", "currency"),
    ("industry", "string", 255), ("sicCode", "string", 40), *SYSTEM_TIMES,
    # Custom fields the connector's default mappings write.
    ("vismaNumber", "string", 30), ("vismaEntity", "string", 20), ("vismaStatus", "string", 20),
    ("vismaClassId", "string", 30), ("vismaClass", "string", 100), ("vismaPaymentTermsId", "string", 30),
    ("vismaPaymentTerms", "string", 100), ("vismaPaymentStatus", "string", 30), ("vismaCurrency", "string", 3),
    ("vismaCorporateId", "string", 50), ("vismaContactName", "string", 255), ("vismaContactEmail", "email", 255),
    ("vismaLastModified", "datetime"), ("vismaSegment", "string", 50), ("vismaBalance", "currency"),
    ("vismaOverdueAmount", "currency"), ("vismaDunningLevel", "integer"),
])

DEFAULT_CUSTOM_OBJECTS: dict[str, dict[str, Any]] = {
    "vismaSupplier_c": {
        "displayName": "Visma supplier",
        "dedupe_fields": ["vismaKey"],
        "fields": {
            "vismaKey": {"dataType": "string", "length": 100}, "name": {"dataType": "string", "length": 255},
            "vismaNumber": {"dataType": "string", "length": 30}, "vismaStatus": {"dataType": "string", "length": 20},
            "vismaClassId": {"dataType": "string", "length": 30}, "vismaClass": {"dataType": "string", "length": 100},
            "vismaPaymentTerms": {"dataType": "string", "length": 100},
            "vismaSegment": {"dataType": "string", "length": 50}, "street": {"dataType": "string", "length": 255},
            "city": {"dataType": "string", "length": 255}, "country": {"dataType": "string", "length": 255},
            "email": {"dataType": "email", "length": 255}, "phone": {"dataType": "phone", "length": 255},
            "vismaLastModified": {"dataType": "datetime"},
        },
    },
    # Reference data (classes, payment terms...) that the connector's reference sync writes.
    "vismaReference_c": {
        "displayName": "Visma reference data",
        "dedupe_fields": ["vismaRefKey"],
        "fields": {
            "vismaRefKey": {"dataType": "string", "length": 100}, "refType": {"dataType": "string", "length": 40},
            "code": {"dataType": "string", "length": 40}, "description": {"dataType": "string", "length": 255},
            "active": {"dataType": "boolean"},
        },
    },
}


def company_schema(overrides: dict[str, Any] | None = None) -> ObjectSchema:
    """The Company object; ``overrides`` adds or replaces fields (name -> spec) or removes them (name -> None)."""
    fields = dict(COMPANY_FIELDS)
    for name, spec in (overrides or {}).items():
        if spec is None:
            fields.pop(name, None)
        else:
            fields[name] = FieldSpec.from_dict(name, spec)
    system = {"id", "createdAt", "updatedAt"}
    return ObjectSchema(api_name=COMPANY, name="Company", display_name="Company", plural_name="Companies",
                        id_field="id", dedupe_fields=["externalCompanyId"], description="Company object",
                        searchable=[["externalCompanyId"], ["id"], ["company"]], fields=fields,
                        id_field_actions=frozenset({"updateOnly", "createOrUpdate"}),
                        crm_fields=frozenset(set(fields) - system))


def custom_object_schema(api_name: str, spec: dict[str, Any]) -> ObjectSchema:
    """A custom object type from ``{"displayName", "dedupe_fields", "fields": {name: {dataType, length}}}``."""
    dedupe = list(spec.get("dedupe_fields") or spec.get("dedupeFields") or [])
    if not 1 <= len(dedupe) <= 3:
        raise ValueError(f"{api_name}: a custom object has 1 to 3 dedupe fields")
    fields = {"marketoGUID": FieldSpec("marketoGUID", "string", 36, False, "Marketo GUID")}
    for name, raw in spec["fields"].items():
        # Dedupe fields are set on create and never changed, as with Company.externalCompanyId.
        fields[name] = FieldSpec.from_dict(name, raw, updateable=name not in dedupe)
    fields.update(_specs(SYSTEM_TIMES))
    missing = [name for name in dedupe if name not in fields]
    if missing:
        raise ValueError(f"{api_name}: dedupe fields {missing} are not among its fields")
    label = spec.get("displayName", api_name)
    return ObjectSchema(api_name=api_name, name=api_name, display_name=label,
                        plural_name=spec.get("pluralName", f"{label}s"), id_field="marketoGUID",
                        dedupe_fields=dedupe, description=spec.get("description", label),
                        searchable=[dedupe, ["marketoGUID"]], fields=fields)


def build_schemas(company_fields: dict[str, Any] | None,
                  custom_objects: dict[str, Any] | None) -> dict[str, ObjectSchema]:
    """Company plus the custom object types: the defaults, with ``custom_objects`` adding or replacing
    types (apiName -> spec) or removing one (apiName -> None)."""
    types = {**DEFAULT_CUSTOM_OBJECTS, **(custom_objects or {})}
    schemas = {COMPANY: company_schema(company_fields)}
    for api_name, spec in types.items():
        if spec is not None:
            schemas[api_name] = custom_object_schema(api_name, spec)
    return schemas


# -- leads (reference §7) ----------------------------------------------------------------------------

LEAD = "lead"  # the store's name for the Lead object; not a custom object and not in ``build_schemas``
LEAD_READ_ONLY = frozenset({"id", "createdAt", "updatedAt"})  # describe: ``rest.readOnly: true``
# name, dataType, length, display name, describe id. Marketo's standard lead fields the connector
# touches, then the instance's custom fields (ids from 10000 up, as custom fields get high ids).
LEAD_FIELDS: list[tuple[str, str, int | None, str, int]] = [
    ("id", "integer", None, "Id", 1),
    ("company", "string", 255, "Company Name", 2),  # id 2 as in the Describe Lead sample [LEADS]
    ("email", "email", 255, "Email Address", 3),
    ("firstName", "string", 255, "First Name", 4),
    ("lastName", "string", 255, "Last Name", 5),
    ("title", "string", 255, "Job Title", 6),
    ("phone", "phone", 255, "Phone Number", 7),
    ("mobilePhone", "phone", 255, "Mobile Phone Number", 8),
    ("city", "string", 255, "City", 9),
    ("country", "string", 255, "Country", 10),
    ("leadSource", "string", 255, "Lead Source", 11),
    ("unsubscribed", "boolean", None, "Unsubscribed", 12),
    ("unsubscribedReason", "string", 255, "Unsubscribed Reason", 13),
    ("marketingSuspended", "boolean", None, "Marketing Suspended", 14),
    ("externalCompanyId", "string", 100, "External Company Id", 15),
    ("createdAt", "datetime", None, "Created At", 16),
    ("updatedAt", "datetime", None, "Updated At", 17),
    ("vismaCustomerNumber", "string", 255, "Visma Customer Number", 10001),
    ("vismaContactId", "string", 255, "Visma Contact Id", 10002),
]
# Booleans a new lead starts with when the sync does not send them (a new person is subscribed).
LEAD_DEFAULTS: dict[str, Any] = {"unsubscribed": False, "marketingSuspended": False}


@dataclass
class LeadSchema:
    """The Lead object: fields, describe ids and the fields a sync may look leads up by / a query filter on.

    Get Leads by Filter Type accepts ``id``, ``email`` and any custom string, email or integer field [SWAG
    getLeadsByFilterUsingGET]; Sync Leads' ``lookupField`` takes the same set here (``id`` only with
    updateOnly, reference §7)."""

    fields: dict[str, FieldSpec]
    field_ids: dict[str, int]
    custom: frozenset[str]

    def searchable(self) -> list[str]:
        return ["email", "id", *(name for name in self.fields if name in self.custom
                                 and self.fields[name].data_type in ("string", "email", "integer"))]

    def describe(self) -> list[dict[str, Any]]:
        """Describe Lead (``describeUsingGET_2``): ``LeadAttribute`` entries with REST and SOAP names."""
        entries = []
        for name, spec in self.fields.items():
            entry: dict[str, Any] = {"id": self.field_ids[name], "displayName": spec.label or display_name(name),
                                     "dataType": spec.data_type}
            if spec.length is not None:
                entry["length"] = spec.length
            read_only = name in LEAD_READ_ONLY
            entry["rest"] = {"name": name, "readOnly": read_only}
            entry["soap"] = {"name": name[:1].upper() + name[1:], "readOnly": read_only}
            entries.append(entry)
        return entries

    def describe2(self, crm_enabled: bool) -> dict[str, Any]:
        """Describe Lead2 (``describeUsingGET_6``): one ``LeadAttribute2`` with ``name: "API Lead"``."""
        return {"name": "API Lead", "searchableFields": [[name] for name in self.searchable()],
                "fields": [{"name": name, "displayName": spec.label or display_name(name),
                            "dataType": spec.data_type, **({"length": spec.length} if spec.length else {}),
                            "updateable": spec.updateable, "crmManaged": crm_enabled and name not in self.custom
                            and name not in LEAD_READ_ONLY}
                           for name, spec in self.fields.items()]}

    def clean(self, record: dict[str, Any], key_fields: list[str]) -> dict[str, Any]:
        return clean_record(self.fields, record, key_fields)


def lead_schema(overrides: dict[str, Any] | None = None) -> LeadSchema:
    """The Lead object; ``overrides`` adds custom fields or replaces fields (name -> spec) or removes them
    (name -> None). The standard system fields ``id``, ``createdAt`` and ``updatedAt`` stay."""
    fields = {name: FieldSpec(name, data_type, length, name not in LEAD_READ_ONLY, label)
              for name, data_type, length, label, _ in LEAD_FIELDS}
    ids = {name: ident for name, *_, ident in LEAD_FIELDS}
    custom = {name for name in fields if name.startswith("visma")}
    for name, spec in (overrides or {}).items():
        if name in LEAD_READ_ONLY:
            raise ValueError(f"lead field '{name}' is a system field")
        if spec is None:
            fields.pop(name, None)
            custom.discard(name)
            continue
        fields[name] = FieldSpec.from_dict(name, spec)
        if name not in ids:
            ids[name] = max(ids.values()) + 1
            custom.add(name)
    return LeadSchema(fields, ids, frozenset(custom))
