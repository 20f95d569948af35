"""The SQS message that carries one mapped Visma record from the poller to the writer."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ml_connector.config import VismaEntity

SCHEMA_VERSION = 1


def version_key(visma_timestamp: str, modified_at: datetime) -> str:
    """A sortable record version. Visma's ``timeStamp`` is a SQL Server rowversion (8 bytes, base64), which
    grows with every change database-wide whatever the clocks say; without one, the modification time."""
    try:
        raw = base64.b64decode(visma_timestamp, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) == 8:
        return f"rv{int.from_bytes(raw, 'big'):020d}"
    return "tm" + modified_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def content_hash(fields: dict[str, Any]) -> str:
    """Stable hash of the mapped fields: equal hashes mean Marketo already holds this content."""
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class SyncMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: int = Field(default=SCHEMA_VERSION, ge=1, le=SCHEMA_VERSION)
    connection: str = Field(min_length=1)
    entity: VismaEntity
    internal_id: int
    number: str
    # Marketo destination: "companies" or a custom object's API name, and its dedupe field.
    marketo_object: str = Field(min_length=1)
    dedupe_field: str = Field(min_length=1)
    key: str = Field(min_length=1, max_length=255)
    # Version of the Visma record: its last modification (UTC) and its row version.
    modified_at: datetime
    visma_timestamp: str
    fields: dict[str, Any]
    content_hash: str

    @model_validator(mode="before")
    @classmethod
    def _hash_from_fields(cls, data: Any) -> Any:
        """The hash is always computed from the fields, never trusted from the message body."""
        if isinstance(data, dict) and isinstance(data.get("fields"), dict):
            return {**data, "content_hash": content_hash(data["fields"])}
        return data

    @classmethod
    def build(cls, **data: Any) -> SyncMessage:
        return cls.model_validate(data)

    @property
    def record_ref(self) -> str:
        return f"{self.connection}/{self.entity}/{self.internal_id}"

    def marketo_record(self) -> dict[str, Any]:
        return {self.dedupe_field: self.key, **self.fields}

    @property
    def version(self) -> str:
        return version_key(self.visma_timestamp, self.modified_at)

    def newer_than(self, other: SyncMessage) -> bool:
        return (self.version, self.modified_at) > (other.version, other.modified_at)


def pack_messages(messages: Iterable[SyncMessage]) -> str:
    """Compact form of a chunk's messages for a job record (DynamoDB items are capped at 400 KB)."""
    raw = json.dumps([m.model_dump(mode="json") for m in messages], separators=(",", ":")).encode("utf-8")
    return base64.b64encode(zlib.compress(raw, 9)).decode("ascii")


def unpack_messages(packed: str) -> list[SyncMessage]:
    data = json.loads(zlib.decompress(base64.b64decode(packed)))
    return [SyncMessage.model_validate(item) for item in data]
