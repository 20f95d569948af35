"""Declarative Visma -> Marketo mapping, loaded from a JSON file per connection and validated at load.

A mapping file has one section per Visma entity (``customer``, ``supplier``, ``contact``). A section
names its Marketo target (``companies``, ``leads`` or a custom object's API name), the dedupe field and
how its value is built (from the record's ``internalId``, or for leads from a source such as the
e-mail), and one rule per Marketo field::

    "vismaSegment": {"source": "customerClass.id", "lookup": {"DOM": "Domestic"}, "default": "Other"}

A rule takes its value from exactly one of ``source`` (a dotted Visma path), ``constant`` or
``derive`` (a named derivation such as ``payment_status``), then applies ``lookup`` (with
``default`` for a miss), the named ``transform`` steps in order, ``default`` for a null, and trims
strings to ``max_length`` (filled from Marketo's describe when not given). ``omit_if_null`` leaves the
field out of the record instead of sending null (for ``unsubscribed``: Marketo must never be told false).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

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


def get_path(record: Record, path: str) -> Any:
    """Follow a dotted path (``mainAddress.country.id``); a missing or null step yields None."""
    value: Any = record
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


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


class FieldRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = None
    constant: Any = None
    derive: str | None = None
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
        if sum(x is not None for x in (self.source, self.constant, self.derive)) != 1:
            raise ValueError("give exactly one of source, constant, derive")
        if self.derive is not None and self.derive not in DERIVATIONS:
            raise ValueError(f"unknown derivation {self.derive!r} (known: {', '.join(sorted(DERIVATIONS))})")
        for name in self.transform:
            if name not in TRANSFORMS:
                raise ValueError(f"unknown transform {name!r} (known: {', '.join(sorted(TRANSFORMS))})")
        return self

    def value(self, record: Record) -> Any:
        if self.constant is not None:
            value = self.constant
        elif self.derive is not None:
            value = DERIVATIONS[self.derive](record)
        else:
            value = get_path(record, self.source or "")
        if self.lookup is not None:
            value = self.lookup.get(str(value)) if value is not None else None
        for name in self.transform:
            value = TRANSFORMS[name](value)
        if value is None:
            value = self.default
        if self.max_length is not None and isinstance(value, str):
            value = value[: self.max_length]
        return value


class EntityMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(default="companies", min_length=1)
    dedupe_field: str = "externalCompanyId"
    # Keyed on internalId: Visma customer numbers can be renamed.
    key_template: str = "visma-{company_id}-{entity}-{internal_id}"
    # Instead of key_template: the key is this rule's value (leads are identified by e-mail in Marketo).
    key_source: FieldRule | None = None
    fields: dict[str, FieldRule] = Field(min_length=1)

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
        return self

    @property
    def uses_payment(self) -> bool:
        """Whether any field needs payment facts (so the poller reads invoices and balances)."""
        return any(rule.derive == "payment_status" or (rule.source or "").startswith("_payment")
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


class ReferenceMapping(BaseModel):
    """Where reference data (classes, credit terms, payment methods) goes: one custom object."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(default="vismaReference_c", min_length=1)
    dedupe_field: str = "vismaRefKey"
    key_template: str = "visma-{company_id}-{type}-{code}"


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

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
