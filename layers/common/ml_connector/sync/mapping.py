"""Declarative Visma -> Marketo mapping, loaded from a JSON file per connection and validated at load.

A mapping file has one section per Visma entity (``customer``, ``supplier``, ``contact``). A section
names its Marketo target (``companies``, ``leads`` or a custom object's API name), the dedupe field and
how its value is built (from the record's ``internalId``, or for leads from a source such as the
e-mail), and one rule per Marketo field::

    "vismaSegment":  {"source": "attributes[SEGMENT].value", "default": "Other"}
    "billingStreet": {"join": ["mainAddress.addressLine1", "mainAddress.addressLine2"], "separator": ", "}

A rule takes its value from exactly one of ``source`` (a Visma path: dotted names, where ``name[KEY]``
picks the element of a list whose ``id`` is KEY and ``name[field=KEY]`` matches on another field),
``constant``, ``derive`` (a named derivation such as ``payment_status``), ``join`` (the non-empty values
of several paths joined by ``separator``) or ``first_of`` (the first non-empty value of several paths),
then applies ``lookup`` (with ``default`` for a miss), the named ``transform`` steps in order,
``default`` for a null, and trims strings to ``max_length`` (filled from Marketo's describe when not
given). ``omit_if_null`` leaves the field out of the record instead of sending null (for
``unsubscribed``: Marketo must never be told false). A ``_comment`` key is allowed in the file, in each
section and in each rule, and ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ml_connector.config import SSM_PREFIX, ConfigError, VismaEntity, read_document
from ml_connector.sync.payment import payment_status as payment_rule
from ml_connector.sync.transforms import TRANSFORMS
from ml_connector.validation import describe
from ml_connector.visma.models import opted_out

Record = dict[str, Any]
DEFAULT_MAPPING_PATH = Path(__file__).resolve().parent.parent / "mappings" / "default.json"


class MappingError(ConfigError):
    """A mapping file is invalid; the message names the file, the field and the reason."""


class NoMarketoKey(ValueError):
    """A record has no value for its Marketo key (e.g. a contact without e-mail): it cannot be synced."""


# What the connector adds to a record (see EntityMapping.map and the poller); Visma's fields never start with "_".
SYNTHETIC_SOURCES = ("_entity", "_modified_at", "_payment", "_company_key")
# One step of a path: a name, optionally selecting from a list by key: ``attributes[SEGMENT]``,
# ``supplierPaymentMethodDetails[paymentMethodDetailId=ACCOUNT]``.
_STEP = re.compile(r"(?P<name>[A-Za-z_]\w*)(?:\[(?:(?P<field>[A-Za-z_]\w*)=)?(?P<key>[^\[\]=.\s]+)\])?")
COMMENT_KEY = "_comment"


@dataclass(frozen=True, slots=True)
class PathStep:
    name: str
    match_field: str | None = None  # with key: select the list element whose match_field equals key
    key: str | None = None


@lru_cache(maxsize=4096)
def parse_path(path: str) -> tuple[PathStep, ...]:
    """The steps of a source path; ValueError (naming the path and the reason) for one that cannot work."""
    steps = []
    for text in path.split("."):
        match = _STEP.fullmatch(text)
        if match is None:
            raise ValueError(f"bad source path {path!r}: {text!r} is not a name or name[KEY] "
                             "(e.g. mainAddress.city, attributes[SEGMENT].value)")
        key = match["key"]
        steps.append(PathStep(match["name"], (match["field"] or "id") if key else None, key))
    if steps[-1].key is not None:
        raise ValueError(f"bad source path {path!r}: it picks a whole list element; name the value to take, "
                         f"e.g. {path}.value")
    root = steps[0].name
    if root.startswith("_") and root not in SYNTHETIC_SOURCES:
        raise ValueError(f"unknown source {root!r} in {path!r} (the connector provides {', '.join(SYNTHETIC_SOURCES)})")
    return tuple(steps)


def get_path(record: Record, path: str) -> Any:
    """Follow a path (``mainAddress.country.id``, ``attributes[SEGMENT].value``); a missing or null step,
    or a list without the wanted element, yields None."""
    value: Any = record
    for step in parse_path(path):
        value = value.get(step.name) if isinstance(value, dict) else None
        if step.key is not None:
            value = select(value, step.match_field or "id", step.key)
    return value


def select(items: Any, field: str, key: str) -> Any:
    """The first dict in ``items`` whose ``field`` equals ``key``, ignoring case (Visma keeps attribute ids in
    upper case; a mapping written in lower case should still find them); None when there is none."""
    if not isinstance(items, list):
        return None
    wanted = key.casefold()
    return next((item for item in items if isinstance(item, dict) and item.get(field) is not None
                 and str(item[field]).casefold() == wanted), None)


def _part(value: Any) -> str | None:
    """A value as text for joining: stripped, None when empty or not a scalar."""
    if value is None or isinstance(value, dict | list):
        return None
    return str(value).strip() or None


def joined(values: list[Any], separator: str) -> str | None:
    """The non-empty values joined by ``separator``; None when all are empty."""
    return separator.join(parts) if (parts := [p for v in values if (p := _part(v)) is not None]) else None


def _blank(value: Any) -> bool:
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, list | dict) and not value)


def first_non_empty(values: list[Any]) -> Any:
    """The first value that is neither null nor blank text (nor an empty list or object)."""
    return next((v for v in values if not _blank(v)), None)


def unsubscribed_if_opted_out(record: Record) -> bool | None:
    """True when Visma says no marketing (noMarketing, noMassMail or doNotEmail), else None: consent is
    only ever withdrawn from Visma, never granted (``unsubscribed: false`` would re-subscribe a person)."""
    return True if opted_out(record) else None


def payment_status(record: Record) -> str:
    """Connector-side payment status from the record's status and its payment facts (``_payment``);
    see the README's "Payment status" section for the rule."""
    return payment_rule(record.get("status"), record.get("_payment"))


DERIVATIONS: dict[str, Callable[[Record], Any]] = {"payment_status": payment_status,
                                                  "unsubscribed_if_opted_out": unsubscribed_if_opted_out}


class _MappingModel(BaseModel):
    """Strict, so a misspelt key fails at load; only ``_comment`` (a note for people) is dropped."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_comment(cls, data: Any) -> Any:
        if isinstance(data, dict) and COMMENT_KEY in data:
            return {k: v for k, v in data.items() if k != COMMENT_KEY}
        return data


Paths = Annotated[tuple[str, ...], Field(min_length=2)]
ORIGINS = ("source", "constant", "derive", "join", "first_of")


class FieldRule(_MappingModel):
    source: str | None = None
    constant: Any = None
    derive: str | None = None
    join: Paths | None = None
    separator: str = ", "
    first_of: Paths | None = None
    lookup: dict[str, Any] | None = None
    transform: tuple[str, ...] = ()
    default: Any = None
    max_length: int | None = Field(default=None, ge=1)
    omit_if_null: bool = False

    @field_validator("transform", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _check(self) -> FieldRule:
        if sum(getattr(self, origin) is not None for origin in ORIGINS) != 1:
            raise ValueError(f"give exactly one of {', '.join(ORIGINS)}")
        if "separator" in self.model_fields_set and self.join is None:
            raise ValueError("separator applies only to join")
        if self.derive is not None and self.derive not in DERIVATIONS:
            raise ValueError(f"unknown derivation {self.derive!r} (known: {', '.join(sorted(DERIVATIONS))})")
        for name in self.transform:
            if name not in TRANSFORMS:
                raise ValueError(f"unknown transform {name!r} (known: {', '.join(sorted(TRANSFORMS))})")
        for path in self.paths:
            parse_path(path)
        return self

    @property
    def paths(self) -> tuple[str, ...]:
        """Every record path the rule reads."""
        return (self.source,) if self.source is not None else self.join or self.first_of or ()

    def value(self, record: Record) -> Any:
        value = self._origin(record)
        if self.lookup is not None:
            value = self.lookup.get(str(value)) if value is not None else None
        for name in self.transform:
            value = TRANSFORMS[name](value)
        if value is None:
            value = self.default
        if self.max_length is not None and isinstance(value, str):
            value = value[: self.max_length]
        return value

    def _origin(self, record: Record) -> Any:
        if self.constant is not None:
            return self.constant
        if self.derive is not None:
            return DERIVATIONS[self.derive](record)
        if self.join is not None:
            return joined([get_path(record, p) for p in self.join], self.separator)
        if self.first_of is not None:
            return first_non_empty([get_path(record, p) for p in self.first_of])
        return get_path(record, self.source or "")


DeletionMode = Literal["keep", "flag", "delete"]


class DeletionRule(_MappingModel):
    """What a full reconcile does with a record written to Marketo that no longer exists in Visma."""

    mode: DeletionMode = "keep"
    # flag: the Marketo field set on the record, and its value.
    field: str | None = Field(default=None, min_length=1)
    value: Any = "deleted"
    # delete on leads deletes people (and their activity history): only when chosen explicitly.
    delete_leads: bool = False

    @model_validator(mode="after")
    def _check(self) -> DeletionRule:
        if self.mode == "flag" and self.field is None:
            raise ValueError("mode 'flag' needs field (the Marketo field to set, e.g. vismaStatus)")
        if self.mode != "flag" and self.field is not None:
            raise ValueError(f"field applies only to mode 'flag', not {self.mode!r}")
        if self.mode == "flag" and self.value is None:
            raise ValueError("value: a flag needs a value (null is what Marketo holds for an empty field)")
        return self


class EntityMapping(_MappingModel):
    target: str = Field(default="companies", min_length=1)
    dedupe_field: str = "externalCompanyId"
    # Keyed on internalId: Visma customer numbers can be renamed.
    key_template: str = "visma-{company_id}-{entity}-{internal_id}"
    # Instead of key_template: the key is this rule's value (leads are identified by e-mail in Marketo).
    key_source: FieldRule | None = None
    fields: dict[str, FieldRule] = Field(min_length=1)
    # What a full reconcile does with records deleted in Visma (keep, the default, leaves Marketo as it is).
    deletions: DeletionRule = DeletionRule()

    @field_validator("key_template")
    @classmethod
    def _key_has_internal_id(cls, value: str) -> str:
        if "{internal_id}" not in value:
            raise ValueError("must contain {internal_id}, the only stable Visma key")
        try:
            value.format(company_id="", entity="", internal_id=0)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"bad placeholder ({exc}); use {{company_id}}, {{entity}}, {{internal_id}}") from exc
        return value

    @model_validator(mode="after")
    def _dedupe_not_mapped(self) -> EntityMapping:
        if self.dedupe_field in self.fields:
            raise ValueError(f"{self.dedupe_field!r} is the dedupe field; its value comes from key_template")
        if self.deletions.field == self.dedupe_field:
            raise ValueError(f"deletions.field: {self.dedupe_field!r} is the dedupe field; flag another field")
        if self.deletions.mode == "delete" and self.target == "leads" and not self.deletions.delete_leads:
            raise ValueError("deletions.mode: 'delete' on leads deletes people in Marketo; set "
                             "deletions.delete_leads to true to choose it, or use 'flag'")
        return self

    @property
    def uses_payment(self) -> bool:
        """Whether any field needs payment facts (so the poller reads invoices and balances)."""
        return any(rule.derive == "payment_status" or any(p.startswith("_payment") for p in rule.paths)
                   for rule in self.fields.values())

    def key(self, *, company_id: str, entity: str, internal_id: int, record: Record | None = None) -> str:
        """The record's Marketo key; NoMarketoKey when ``key_source`` gives nothing (a contact without e-mail)."""
        if self.key_source is None:
            return self.key_template.format(company_id=company_id, entity=entity, internal_id=internal_id)
        value = self.key_source.value(record or {})
        if value is None or not str(value).strip():
            raise NoMarketoKey(f"no {self.dedupe_field} to identify the record in Marketo")
        return str(value)

    def map(self, record: Record, *, entity: VismaEntity, modified_at: datetime) -> dict[str, Any]:
        """Mapped Marketo fields; ``_entity`` and ``_modified_at`` are synthetic sources a rule can name."""
        enriched = {**record, "_entity": entity, "_modified_at": modified_at}
        mapped = {name: rule.value(enriched) for name, rule in self.fields.items()}
        return {name: value for name, value in mapped.items()
                if value is not None or not self.fields[name].omit_if_null}

    def with_lengths(self, lengths: dict[str, int | None]) -> EntityMapping:
        """Fill each rule's max_length from the destination field's length where the file gave none."""
        fields = {
            name: rule if rule.max_length or not lengths.get(name) else rule.model_copy(
                update={"max_length": lengths[name]})
            for name, rule in self.fields.items()
        }
        return self.model_copy(update={"fields": fields})


class ReferenceMapping(_MappingModel):
    """Where reference data (classes, credit terms, payment methods) goes: one custom object."""

    target: str = Field(default="vismaReference_c", min_length=1)
    dedupe_field: str = "vismaRefKey"
    key_template: str = "visma-{company_id}-{type}-{code}"


class MappingFile(_MappingModel):
    description: str | None = None
    customer: EntityMapping | None = None
    supplier: EntityMapping | None = None
    # Contact persons (``/v1/contact``), usually to leads.
    contact: EntityMapping | None = None
    # Optional: without it, reference data is not synced.
    reference: ReferenceMapping | None = None

    def for_entity(self, entity: VismaEntity) -> EntityMapping | None:
        section: EntityMapping | None = getattr(self, entity)
        return section

    @property
    def entities(self) -> list[VismaEntity]:
        """The entities with a section, in polling order (contacts last: they link to customers)."""
        ordered: tuple[VismaEntity, ...] = ("customer", "supplier", "contact")
        return [e for e in ordered if self.for_entity(e) is not None]


def parse_mapping(data: Any, origin: str) -> MappingFile:
    try:
        return MappingFile.model_validate(data)
    except ValidationError as exc:
        raise MappingError(f"mapping {origin}: {describe(exc)}") from exc


def load_mapping(path: str | Path | None = None) -> MappingFile:
    """Load and validate a mapping (JSON) from a file or ``ssm:/parameter``; None means the shipped default."""
    in_ssm = isinstance(path, str) and path.startswith(SSM_PREFIX)
    file: str | Path = path if in_ssm and path else _shipped_or_given(Path(path or DEFAULT_MAPPING_PATH))
    try:
        data = json.loads(read_document(str(file)))
    except OSError as exc:
        raise MappingError(f"mapping {file}: cannot read ({exc.strerror or exc})") from exc
    except json.JSONDecodeError as exc:
        raise MappingError(f"mapping {file}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return parse_mapping(data, str(file))


def _shipped_or_given(path: Path) -> Path:
    """A bare file name that is not in the working directory names one of the shipped mappings."""
    shipped = DEFAULT_MAPPING_PATH.with_name(path.name)
    return shipped if path.name == str(path) and not path.exists() and shipped.exists() else path


class DescribedField(Protocol):
    name: str
    length: int | None
    updateable: bool


class DescribedObject(Protocol):
    name: str
    dedupe_fields: list[str]
    fields: dict[str, Any]


def check_against_marketo(mapping: EntityMapping, described: DescribedObject, origin: str) -> EntityMapping:
    """Fail on fields Marketo does not have or will not update; size strings to Marketo's lengths."""
    problems = []
    if mapping.dedupe_field not in described.dedupe_fields:
        problems.append(f"dedupe_field {mapping.dedupe_field!r} is not a dedupe field of {described.name} "
                        f"(Marketo has {', '.join(described.dedupe_fields) or 'none'})")
    flag = mapping.deletions.field
    if flag is not None and (flag not in described.fields or not described.fields[flag].updateable):
        problems.append(f"deletions.field {flag!r} is not an updateable field of Marketo {described.name}")
    for name in mapping.fields:
        field = described.fields.get(name)
        if field is None:
            problems.append(f"field {name!r} does not exist on Marketo {described.name}")
        elif getattr(field, "crm_managed", False) and mapping.target != "leads":
            problems.append(f"field {name!r} is managed by the instance's native CRM sync (the Company API is "
                            "read-only there): map this entity to a custom object instead")
        elif not field.updateable:
            problems.append(f"field {name!r} is read-only on Marketo {described.name}")
    if problems:
        raise MappingError(f"mapping {origin} ({mapping.target}): " + "; ".join(problems))
    return mapping.with_lengths({n: f.length for n, f in described.fields.items()})
