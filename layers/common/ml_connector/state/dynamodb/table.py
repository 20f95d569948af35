"""Reads and writes on the state table shared by every key family: paged queries, batched gets."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ml_connector.state.dynamodb.keys import key

BATCH_GET_LIMIT = 100
MAX_UNPROCESSED_RETRIES = 8


class StateTable:
    def __init__(self, name: str, resource: Any) -> None:
        self.name = name
        self.resource = resource
        self.table = resource.Table(name)
        # The resource's client: thread-safe (unlike the resource), and it still takes plain Python values.
        self.client = resource.meta.client

    def conditional_failure(self, exc: Exception) -> bool:
        return isinstance(exc, self.client.exceptions.ConditionalCheckFailedException) or (
            getattr(exc, "response", {}).get("Error", {}).get("Code") == "ConditionalCheckFailedException")

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.table.get_item(Key=key(pk, sk), ConsistentRead=consistent).get("Item")
        return item

    def query(self, pk: str, projection: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"KeyConditionExpression": "pk = :pk", "ExpressionAttributeValues": {":pk": pk}}
        if projection:
            names = _names(projection)
            kwargs.update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
        while True:
            page = self.table.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def get_many(self, pk: str, sort_keys: Iterable[int | str], projection: Sequence[str] = ()
                 ) -> list[dict[str, Any]]:
        unique = list(dict.fromkeys(str(s) for s in sort_keys))
        items: list[dict[str, Any]] = []
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            items.extend(self._batch_get([key(pk, s) for s in unique[start : start + BATCH_GET_LIMIT]], projection))
        return items

    def get_keys(self, keys: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
        """Items by full key (any partitions), in batches of up to 100."""
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            items.extend(self._batch_get(list(keys[start : start + BATCH_GET_LIMIT]), ()))
        return items

    def put_many(self, items: Iterable[dict[str, Any]]) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:
            for item in items:
                batch.put_item(Item=item)

    def _batch_get(self, keys: list[dict[str, str]], projection: Sequence[str]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        spec: dict[str, Any] = {"Keys": keys, "ConsistentRead": True}
        if projection:
            names = _names(projection)
            spec.update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
        request = {self.name: spec}
        for attempt in range(MAX_UNPROCESSED_RETRIES):
            response = self.resource.batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise RuntimeError("DynamoDB left keys unprocessed after retries")


def _names(projection: Sequence[str]) -> dict[str, str]:
    return {f"#p{i}": name for i, name in enumerate(projection)}


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB returns numbers as Decimal; models want ints."""
    return {k: (int(v) if type(v).__name__ == "Decimal" else v) for k, v in item.items()}
