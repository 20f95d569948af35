"""The mapped Visma records the poller sends the writer, and the SQS message bodies that carry them.

One SQS message is a *pack* of up to 300 records under SQS's 256 KiB (``sync.outbox`` packs them), in one of
two forms, whichever is smaller:

- plain: ``{"pack": 1, "messages": [<SyncMessage>, ...]}``;
- deflated: ``{"pack": 2, "deflated": "<base64 of the zlib-compressed plain body>"}``. Records of one
  connection repeat most of their keys and values, so 300 typical records (about 330 KB plain) travel as
  about 70 KB: a full Marketo call per message, and fewer of SQS's 64 KB billing chunks.

A body that is a single SyncMessage (what earlier versions sent) is still read, so messages in flight during
an upgrade are written as before."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ml_connector.config import VismaEntity

SCHEMA_VERSION = 1
PACK_VERSION = 1  # plain
DEFLATED_PACK_VERSION = 2
DEFLATE_LEVEL = 6  # level 9 saves about 4 % more at 3.5 x the CPU (300 typical records: 3 ms against 10)
MAX_RECORDS_PER_PACK = 300  # a Marketo call's worth: a full pack becomes one full chunk


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


def deflate(raw: bytes, level: int = DEFLATE_LEVEL) -> str:
    """zlib-compressed and base64-encoded: text that SQS and DynamoDB strings carry."""
    return base64.b64encode(zlib.compress(raw, level)).decode("ascii")


def inflate(text: str, *, max_bytes: int) -> bytes:
    """The bytes ``deflate`` encoded; ValueError when ``text`` is not such an encoding or inflates beyond
    ``max_bytes`` (a bound on memory whatever the body claims)."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(base64.b64decode(text, validate=True), max_bytes)
    except (binascii.Error, zlib.error) as exc:
        raise ValueError(f"deflated pack is not base64 zlib data: {exc}") from exc
    if inflater.unconsumed_tail or not inflater.eof:
        raise ValueError(f"deflated pack is truncated or inflates beyond {max_bytes} bytes")
    return raw


def pack_messages(messages: Iterable[SyncMessage]) -> str:
    """Compact form of a chunk's messages for a job record (DynamoDB items are capped at 400 KB)."""
    return deflate(json.dumps([m.model_dump(mode="json") for m in messages], separators=(",", ":")).encode("utf-8"),
                   9)


def unpack_messages(packed: str) -> list[SyncMessage]:
    data = json.loads(inflate(packed, max_bytes=MAX_INFLATED_BYTES))  # a job holds at most a pack's records
    return [SyncMessage.model_validate(item) for item in data]


def pack_body(record_bodies: Iterable[str]) -> str:
    """A pack body around records already serialised (``SyncMessage.model_dump_json()``): built by joining
    them, so its size is exactly what the sender measured."""
    return f'{{"pack":{PACK_VERSION},"messages":[' + ",".join(record_bodies) + "]}"


PACK_OVERHEAD_BYTES = len(pack_body([]).encode("utf-8"))
# What a deflated pack may inflate to: 300 records of at most SQS's 256 KiB each, plainly packed.
MAX_INFLATED_BYTES = MAX_RECORDS_PER_PACK * (262_144 + 1) + PACK_OVERHEAD_BYTES


def deflated_pack_body(plain_body: str) -> str:
    return f'{{"pack":{DEFLATED_PACK_VERSION},"deflated":"{deflate(plain_body.encode("utf-8"))}"}}'


def smallest_pack_body(record_bodies: list[str]) -> str:
    """The plain or the deflated pack of these records, whichever has fewer bytes."""
    plain = pack_body(record_bodies)
    deflated = deflated_pack_body(plain)
    return deflated if len(deflated) < len(plain.encode("utf-8")) else plain  # deflated is ASCII


class RefusedRecord(NamedTuple):
    """A record of a pack that is not a valid SyncMessage: quarantined alone, the rest are written."""

    position: int  # in the pack
    raw: str
    error: Exception


class UnpackedBody(NamedTuple):
    messages: list[SyncMessage]
    refused: list[RefusedRecord]


def unpack_body(body: str) -> UnpackedBody:
    """The records of an SQS message body: a pack or a single SyncMessage. Raises ValueError (or a pydantic
    ValidationError) when the body as a whole is unreadable; a bad record inside a pack is only refused."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or "pack" not in data:  # one record, read (and refused) as before packs
        return UnpackedBody([SyncMessage.model_validate_json(body)], [])
    if data["pack"] == DEFLATED_PACK_VERSION and set(data) == {"pack", "deflated"}:
        if not isinstance(data["deflated"], str):
            raise ValueError("a deflated pack's 'deflated' is not a string")
        data = _json_object(inflate(data["deflated"], max_bytes=MAX_INFLATED_BYTES))
    if data.get("pack") != PACK_VERSION or set(data) != {"pack", "messages"} or not isinstance(data["messages"], list):
        raise ValueError(f"not a version-{PACK_VERSION} or -{DEFLATED_PACK_VERSION} pack of messages "
                         f"(keys {sorted(data)}, pack {data.get('pack')!r})")
    unpacked = UnpackedBody([], [])
    for index, record in enumerate(data["messages"]):
        try:
            unpacked.messages.append(SyncMessage.model_validate(record))
        except ValidationError as exc:
            unpacked.refused.append(RefusedRecord(index, json.dumps(record, ensure_ascii=False), exc))
    return unpacked


def _json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object a deflated pack holds; ValueError when it holds anything else."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"deflated pack does not hold JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError("deflated pack does not hold a JSON object")
    return data
