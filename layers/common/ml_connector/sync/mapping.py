"""Visma record -> Marketo fields, driven by a declarative list of field rules.

A rule names the Marketo field, where its value comes from (a dotted Visma path, a constant, or a
derivation) and an optional transform. The shipped default maps customers and suppliers onto Marketo
company fields; every string is trimmed to the destination field's length so Marketo never skips a
record for an overlong value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ml_connector.config import VismaEntity

Record = dict[str, Any]


def get_path(record: Record, path: str) -> Any:
    """Follow a dotted path (``mainAddress.country.id``); a missing or null step yields None."""
    value: Any = record
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def _strip(value: Any) -> Any:
    return value.strip() or None if isinstance(value, str) else value


def _lower(value: Any) -> Any:
    return value.strip().lower() or None if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.strip().upper() or None if isinstance(value, str) else value


def _iso_utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "strip": _strip,
    "lower": _lower,
    "upper": _upper,
    "iso_utc": _iso_utc,
}


def payment_status(record: Record) -> str:
    """Connector-side payment status from the customer's credit status (see README, "Payment status")."""
    status = record.get("status")
    if status in ("CreditHold", "OnHold", "HoldPayments"):
        return "on_hold"
    if status == "Inactive":
        return "inactive"
    return "current"


DERIVATIONS: dict[str, Callable[[Record], Any]] = {"payment_status": payment_status}


class FieldRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    target: str = Field(min_length=1)
    source: str | None = None
    constant: Any = None
    derive: str | None = None
    transform: str | None = None
    max_length: int | None = Field(default=None, ge=1)
    # Some Visma paths differ per entity (customerClass vs supplierClass).
    entity: VismaEntity | None = None

    @model_validator(mode="after")
    def _one_origin(self) -> FieldRule:
        origins = [self.source is not None, self.constant is not None, self.derive is not None]
        if sum(origins) != 1:
            raise ValueError(f"field {self.target!r}: give exactly one of source, constant, derive")
        if self.derive is not None and self.derive not in DERIVATIONS:
            raise ValueError(f"field {self.target!r}: unknown derivation {self.derive!r}")
        if self.transform is not None and self.transform not in TRANSFORMS:
            raise ValueError(f"field {self.target!r}: unknown transform {self.transform!r}")
        return self

    def value(self, record: Record) -> Any:
        if self.constant is not None:
            raw = self.constant
        elif self.derive is not None:
            raw = DERIVATIONS[self.derive](record)
        else:
            raw = get_path(record, self.source or "")
        if self.transform:
            raw = TRANSFORMS[self.transform](raw)
        if self.max_length is not None and isinstance(raw, str):
            raw = raw[: self.max_length]
        return raw


class EntityMapping(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    dedupe_field: str = "externalCompanyId"
    # Keyed on internalId: Visma customer numbers can be renamed.
    key_template: str = "visma-{company_id}-{entity}-{internal_id}"
    rules: tuple[FieldRule, ...]

    def key(self, *, company_id: str, entity: str, internal_id: int) -> str:
        return self.key_template.format(company_id=company_id, entity=entity, internal_id=internal_id)

    def fields(self, record: Record, entity: VismaEntity) -> dict[str, Any]:
        return {r.target: r.value(record) for r in self.rules if r.entity in (None, entity)}


def _rule(target: str, source: str, max_length: int | None = None, **kw: Any) -> FieldRule:
    return FieldRule(target=target, source=source, max_length=max_length, transform=kw.pop("transform", "strip"), **kw)


DEFAULT_COMPANY_RULES: Sequence[FieldRule] = (
    _rule("company", "name", 255),
    _rule("billingStreet", "mainAddress.addressLine1", 255),
    _rule("billingCity", "mainAddress.city", 255),
    _rule("billingPostalCode", "mainAddress.postalCode", 255),
    _rule("billingCountry", "mainAddress.country.name", 255),
    _rule("website", "mainContact.web", 255),
    _rule("mainPhone", "mainContact.phone1", 255),
    FieldRule(target="numberOfEmployees", source="numberOfEmployees"),
    _rule("vismaNumber", "number", 30),
    FieldRule(target="vismaEntity", source="_entity"),
    _rule("vismaStatus", "status", 20),
    _rule("vismaClassId", "customerClass.id", 30, entity="customer"),
    _rule("vismaClass", "customerClass.description", 100, entity="customer"),
    _rule("vismaClassId", "supplierClass.id", 30, entity="supplier"),
    _rule("vismaClass", "supplierClass.description", 100, entity="supplier"),
    _rule("vismaPaymentTermsId", "creditTerms.id", 30),
    _rule("vismaPaymentTerms", "creditTerms.description", 100),
    FieldRule(target="vismaPaymentStatus", derive="payment_status"),
    _rule("vismaCurrency", "currencyId", 3, transform="upper"),
    _rule("vismaCorporateId", "corporateId", 50),
    _rule("vismaContactName", "mainContact.attention", 255),
    _rule("vismaContactEmail", "mainContact.email", 255, transform="lower"),
    FieldRule(target="vismaLastModified", source="_modified_at", transform="iso_utc"),
)

DEFAULT_MAPPING = EntityMapping(rules=tuple(DEFAULT_COMPANY_RULES))


def map_record(
    mapping: EntityMapping, record: Record, *, entity: VismaEntity, modified_at: datetime
) -> dict[str, Any]:
    """Mapped Marketo fields for one validated Visma record.

    ``_entity`` and ``_modified_at`` are synthetic sources: the entity name and the parsed,
    timezone-normalised modification time.
    """
    enriched = {**record, "_entity": entity, "_modified_at": modified_at}
    return mapping.fields(enriched, entity)
