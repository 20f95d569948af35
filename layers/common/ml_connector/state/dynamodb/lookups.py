"""Small per-connection lookups: customer numbers, reference data hashes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable


class DynamoCustomerNumbers:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def remember(self, connection: str, entity: str, pairs: Sequence[tuple[str, int]]) -> None:
        pk = keys.numbers(connection, entity)
        self._t.put_many({**keys.key(pk, number), "id": internal_id} for number, internal_id in pairs)

    def internal_ids(self, connection: str, entity: str, numbers: Iterable[str]) -> dict[str, int]:
        return {i["sk"]: int(i["id"]) for i in self._t.get_many(keys.numbers(connection, entity), numbers)}


class DynamoReferenceHashes:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def get(self, connection: str) -> dict[str, str]:
        return {i["sk"]: i["hash"] for i in self._t.query(keys.reference(connection))}

    def put(self, connection: str, hashes: dict[str, str]) -> None:
        pk = keys.reference(connection)
        self._t.put_many({**keys.key(pk, k), "hash": v} for k, v in hashes.items())
