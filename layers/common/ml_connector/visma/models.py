"""Visma.net ERP boundary models: credentials, the DTOs we read, and Visma's two timestamp shapes.

DTOs are tolerant of fields we do not use (Visma adds fields over time) and strict on the ones we
map: a record whose key fields are missing or of the wrong type fails validation and is quarantined.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, StrictInt, StrictStr, field_validator

_DATETIME = re.compile(
    r"^(?P<date>\d{4}-\d{2}-\d{2})(?:[T ](?P<time>\d{2}:\d{2}(?::\d{2})?)(?P<frac>\.\d{1,7})?)?"
    r"(?P<zone>Z|[+-]\d{2}:?\d{2})?$"
)


def parse_visma_datetime(value: str, zone: tzinfo = UTC) -> datetime:
    """An aware UTC datetime from either shape Visma returns: with an offset, or naive (in ``zone``, the
    connection's time zone; an ambiguous wall time takes its earlier instant)."""
    match = _DATETIME.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"not a Visma date-time: {value!r}")
    clock = match["time"] or "00:00:00"
    if len(clock) == 5:
        clock += ":00"
    micro = (match["frac"] or ".0")[1:7].ljust(6, "0")
    parsed = datetime.fromisoformat(f"{match['date']}T{clock}.{micro}")
    offset = match["zone"]
    if offset is None:
        return parsed.replace(tzinfo=zone).astimezone(UTC)
    if offset == "Z":
        return parsed.replace(tzinfo=UTC)
    sign = 1 if offset[0] == "+" else -1
    digits = offset[1:].replace(":", "")
    delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return parsed.replace(tzinfo=timezone(sign * delta)).astimezone(UTC)


def format_visma_datetime(value: datetime, zone: tzinfo = UTC) -> str:
    """A filter value Visma accepts (``yyyy-MM-ddTHH:mm:ss.FFF``, no zone suffix: the API rejects one), as
    wall time in ``zone``. A wall time the zone repeats (autumn clock change) is moved back by the repeat,
    so whichever instant Visma takes it for, the filter starts no later than ``value``."""
    aware = value if value.tzinfo else value.replace(tzinfo=UTC)
    local = aware.astimezone(zone)
    repeat = _repeat(local.replace(tzinfo=None), zone)
    wall = local.replace(tzinfo=None) - repeat
    return wall.strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall.microsecond // 1000:03d}"


def _repeat(wall: datetime, zone: tzinfo) -> timedelta:
    """How long a wall time is repeated in ``zone`` (zero unless it falls in an autumn clock change)."""
    first = wall.replace(tzinfo=zone, fold=0).utcoffset() or timedelta(0)
    second = wall.replace(tzinfo=zone, fold=1).utcoffset() or timedelta(0)
    return max(first - second, timedelta(0))


class VismaCredentials(BaseModel):
    """The Visma secret: a Visma Connect service app approved for one company tenant."""

    # hide_input_in_errors: a validation error must never echo the secret's JSON (client_secret included).
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr
    tenant_id: str = Field(min_length=1)  # the COMPANY tenant id (Visma Admin > Company > Configuration)
    company_id: str = Field(min_length=1)  # sent as ipp-company-id
    scope: str = "vismanet_erp_service_api:read"


class _Dto(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class IdDescription(_Dto):
    id: StrictStr | None = None
    description: StrictStr | None = None


class Country(_Dto):
    id: StrictStr | None = None
    name: StrictStr | None = None


class AddressDto(_Dto):
    addressLine1: StrictStr | None = None
    addressLine2: StrictStr | None = None
    postalCode: StrictStr | None = None
    city: StrictStr | None = None
    country: Country | None = None


class ContactInfoDto(_Dto):
    """The embedded ``mainContact`` of a customer or supplier."""

    name: StrictStr | None = None
    attention: StrictStr | None = None
    email: StrictStr | None = None
    web: StrictStr | None = None
    phone1: StrictStr | None = None


class _PartyDto(_Dto):
    internalId: StrictInt
    number: Annotated[StrictStr, Field(min_length=1)]
    name: Annotated[StrictStr, Field(min_length=1)]
    status: StrictStr | None = None
    lastModifiedDateTime: StrictStr
    timeStamp: StrictStr | None = None
    mainAddress: AddressDto | None = None
    mainContact: ContactInfoDto | None = None
    creditTerms: IdDescription | None = None
    currencyId: StrictStr | None = None
    corporateId: StrictStr | None = None
    numberOfEmployees: StrictInt | None = None

    @field_validator("lastModifiedDateTime")
    @classmethod
    def _parsable(cls, value: str) -> str:
        parse_visma_datetime(value)
        return value

    @field_validator("name", "number")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class CustomerDto(_PartyDto):
    customerClass: IdDescription | None = None
    creditLimit: float | None = None


class SupplierDto(_PartyDto):
    supplierClass: IdDescription | None = None
    paymentMethod: IdDescription | None = None


class ContactDto(_Dto):
    """A contact person (``/v1/contact``, ``/v1/customer/{cd}/contact``) with the consent flags Marketo
    must respect."""

    contactId: StrictInt
    displayName: StrictStr | None = None
    firstName: StrictStr | None = None
    lastName: StrictStr | None = None
    email: StrictStr | None = None
    active: StrictBool | None = None
    businessAccount: StrictStr | None = None
    businessAccountType: StrictStr | None = None
    doNotEmail: StrictBool | None = False
    noMassMail: StrictBool | None = False
    noMarketing: StrictBool | None = False
    lastModifiedDateTime: StrictStr
    timeStamp: StrictStr | None = None

    @property
    def opted_out(self) -> bool:
        return opted_out(self.model_dump())

    # The poller's record identity, named as on customers and suppliers.
    @property
    def internalId(self) -> int:  # noqa: N802 - Visma's field name
        return self.contactId

    @property
    def number(self) -> str:
        return str(self.contactId)


def opted_out(contact: dict[str, Any]) -> bool:
    """Any of Visma's no-marketing flags: Marketo must then treat the person as unsubscribed."""
    return any(contact.get(flag) is True for flag in ("doNotEmail", "noMassMail", "noMarketing"))


class VismaPage(BaseModel):
    """One page of a list endpoint, whichever of Visma's two list shapes it came in."""

    page_number: int
    total_count: int
    max_page_size: int | None
    records: list[dict[str, Any]]
