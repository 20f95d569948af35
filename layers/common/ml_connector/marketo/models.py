"""Marketo boundary models: credentials, per-record sync results, and describe output."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class MarketoCredentials(BaseModel):
    """The Marketo secret: a LaunchPoint custom service's client id and secret."""

    # hide_input_in_errors: a validation error must never echo the secret's JSON (client_secret included).
    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    client_id: str = Field(min_length=1)
    client_secret: SecretStr


class Reason(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str
    message: str = ""


class SyncResult(BaseModel):
    """One input record's outcome, tied back by ``seq`` (its index in the input)."""

    model_config = ConfigDict(extra="allow")

    seq: int
    status: str
    id: int | str | None = None
    marketoGUID: str | None = None
    reasons: list[Reason] = Field(default_factory=list)


class FieldDescription(BaseModel):
    name: str
    data_type: str
    length: int | None = None
    updateable: bool = True
    crm_managed: bool = False


class ObjectDescription(BaseModel):
    """A company or custom-object type as Marketo's describe endpoint reports it."""

    name: str
    id_field: str
    dedupe_fields: list[str]
    searchable_fields: list[list[str]] = Field(default_factory=list)
    fields: dict[str, FieldDescription]

    @classmethod
    def of_leads(cls, described: ObjectDescription) -> ObjectDescription:
        """Leads (describe2) dedupe on any single searchable field."""
        singles = [group[0] for group in described.searchable_fields if len(group) == 1]
        return described.model_copy(update={"name": "leads", "dedupe_fields": singles})

    @classmethod
    def from_describe(cls, result: dict[str, Any]) -> ObjectDescription:
        fields = {}
        for raw in result.get("fields") or []:
            fields[raw["name"]] = FieldDescription(
                name=raw["name"], data_type=str(raw.get("dataType") or "string"), length=raw.get("length"),
                updateable=bool(raw.get("updateable", True)), crm_managed=bool(raw.get("crmManaged", False)))
        return cls(name=str(result.get("apiName") or result.get("name") or "?"),
                   id_field=str(result.get("idField") or "id"), dedupe_fields=list(result.get("dedupeFields") or []),
                   searchable_fields=list(result.get("searchableFields") or []), fields=fields)
