"""Small per-connection lookups: payment facts, customer numbers, reference data hashes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable


class DynamoPaymentFacts:
    def __init__(self, table: StateTable) -> None:
        self._t = table

    def all(self, connection: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for item in self._t.query(keys.payments(connection)):
            yield item["sk"], {k: float(v) if isinstance(v, Decimal) else v for k, v in item.items()
                               if k not in ("pk", "sk")}

    def put(self, connection: str, facts: Iterable[tuple[str, dict[str, Any]]]) -> None:
        requests = []
        for number, values in facts:
            key = keys.key(keys.payments(connection), number)
            requests.append({"PutRequest": {"Item": {**key, **{k: Decimal(str(v)) for k, v in values.items()}}}}
                            if any(values.values()) else {"DeleteRequest": {"Key": key}})
        self._t.write_many(requests)


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
