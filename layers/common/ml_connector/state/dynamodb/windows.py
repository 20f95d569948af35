"""Checkpoints of poll windows that span invocations: a small meta item, and the id sets in binary parts.

The id sets grow with the window (a full load of 100k records sends 100k ids): ids are sorted and
delta-encoded as varints, content hashes kept as 4 bytes, customer numbers read in id order, the lot
zlib-compressed and split into parts under DynamoDB's 400 KB item limit. Parts carry a generation: a new
checkpoint's parts are written before its meta item names them, so a reader never mixes two checkpoints,
and the old generation's are removed after.
"""

from __future__ import annotations

import json
import struct
import uuid
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.models import WindowCheckpoint

PART_BYTES = 350_000  # under the 400 KB item limit with the keys and attribute names
_ID_SETS = ("seen_before", "seen_after", "earlier")
_HASH_BYTES = 4
_NO_ID = -1  # a customer read without an internalId (quarantined): Visma's ids are positive


class DynamoWindows:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def get(self, connection: str, entity: str) -> WindowCheckpoint | None:
        pk = keys.windows(connection, entity)
        meta = self._t.get(pk, keys.WINDOW_META_SK, consistent=True)
        if meta is None:
            return None
        generation, parts = meta["generation"], int(meta["parts"])
        items = self._t.get_many(pk, [keys.window_part_sk(generation, i) for i in range(parts)])
        if len(items) != parts:
            return None  # parts missing (removed under a reader): no checkpoint rather than a wrong one
        ordered = sorted(items, key=lambda i: str(i["sk"]))
        blob = b"".join(bytes(getattr(i["data"], "value", i["data"])) for i in ordered)  # boto3 wraps Binary
        return WindowCheckpoint.model_validate({**json.loads(meta["window"]), **unpack(blob)})

    def is_open(self, connection: str, entity: str) -> bool:
        # Consistent: a continuation asks seconds after the invocation before it saved the checkpoint.
        return self._t.get(keys.windows(connection, entity), keys.WINDOW_META_SK, consistent=True) is not None

    def save(self, connection: str, entity: str, checkpoint: WindowCheckpoint) -> None:
        pk = keys.windows(connection, entity)
        old = {i["sk"] for i in self._t.query(pk, projection=("pk", "sk")) if i["sk"] != keys.WINDOW_META_SK}
        generation = uuid.uuid4().hex[:12]
        blob = pack(checkpoint)
        chunks = [blob[i : i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)] or [b""]
        self._t.put_many({**keys.key(pk, keys.window_part_sk(generation, n)), "data": chunk}
                         for n, chunk in enumerate(chunks))
        scalars = checkpoint.model_dump(exclude={*_ID_SETS, "sent", "read", "invoices", "balances"})
        self._t.put({**keys.key(pk, keys.WINDOW_META_SK), "generation": generation, "parts": len(chunks),
                     "window": json.dumps(scalars)})
        self._t.delete_many(keys.key(pk, sk) for sk in old)

    def delete(self, connection: str, entity: str) -> None:
        pk = keys.windows(connection, entity)
        self._t.delete(keys.key(pk, keys.WINDOW_META_SK))  # first: a reader then finds no checkpoint at all
        self._t.delete_many(keys.key(pk, i["sk"]) for i in self._t.query(pk, projection=("pk", "sk")))


def pack(checkpoint: WindowCheckpoint) -> bytes:
    """The checkpoint's id sets and sent hashes as one compressed blob."""
    sent = sorted(dict(checkpoint.sent).items())
    sections = [_varints(_deltas(sorted(set(getattr(checkpoint, name))))) for name in _ID_SETS]
    sections.append(_varints(_deltas([i for i, _ in sent])))
    sections.append(b"".join(bytes.fromhex(h[: 2 * _HASH_BYTES].ljust(2 * _HASH_BYTES, "0")) for _, h in sent))
    read = sorted(checkpoint.read, key=lambda pair: _NO_ID if pair[1] is None else pair[1])
    sections.append(_varints(_deltas([_NO_ID if i is None else i for _, i in read])))
    sections.append(json.dumps([number for number, _ in read]).encode())  # numbers in id order compress well
    sections.append(json.dumps({"invoices": checkpoint.invoices, "balances": checkpoint.balances}).encode())
    framed = b"".join(struct.pack(">I", len(s)) + s for s in sections)
    return zlib.compress(framed, 6)


def unpack(blob: bytes) -> dict[str, Any]:
    data = zlib.decompress(blob) if blob else b""
    sections: list[bytes] = []
    offset = 0
    while offset < len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        sections.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    if len(sections) < 7:
        return {}
    result: dict[str, Any] = {name: _undelta(_read_varints(s)) for name, s in zip(_ID_SETS, sections, strict=False)}
    sent_ids = _undelta(_read_varints(sections[3]))
    hashes = sections[4]
    result["sent"] = [(i, hashes[n * _HASH_BYTES : (n + 1) * _HASH_BYTES].hex()) for n, i in enumerate(sent_ids)]
    read_ids = _undelta(_read_varints(sections[5]))
    numbers = json.loads(sections[6])
    result["read"] = [(n, None if i == _NO_ID else i) for n, i in zip(numbers, read_ids, strict=True)]
    if len(sections) > 7:  # checkpoints saved before the payment preload was kept have no eighth section
        result.update(json.loads(sections[7]))
    return result


def _deltas(values: list[int]) -> Iterator[int]:
    previous = 0
    for value in values:
        yield value - previous
        previous = value


def _undelta(deltas: Iterable[int]) -> list[int]:
    values, total = [], 0
    for delta in deltas:
        total += delta
        values.append(total)
    return values


def _varints(values: Iterable[int]) -> bytes:
    """Unsigned LEB128 (zig-zag first, so a negative id costs a few bytes rather than failing)."""
    out = bytearray()
    for value in values:
        value = (value << 1) ^ (value >> 63)
        while value >= 0x80:
            out.append((value & 0x7F) | 0x80)
            value >>= 7
        out.append(value)
    return bytes(out)


def _read_varints(data: bytes) -> Iterator[int]:
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            yield (value >> 1) ^ -(value & 1)
            value = shift = 0
