"""Reads and writes on the state table shared by every key family: paged queries, batched gets and writes.

Everything goes through the resource's low-level client, which is thread-safe (a boto3 resource is not)
and still takes plain Python values, so writers can work on several Marketo instances at once. The one hot
write (a record's state, one per record a writer writes) can go through a plain client instead
(``typed_client``): no boto3 (de)serialisation layer, and the request signed and sent without botocore's
pipeline (``signed_updates``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.config import Config

from ml_connector.state.dynamodb.keys import key
from ml_connector.state.dynamodb.signed_updates import SignedUpdates

BATCH_GET_LIMIT = 100
BATCH_WRITE_LIMIT = 25
MAX_UNPROCESSED_RETRIES = 8
# The plain client's requests are built here from typed values, so botocore's validation of them is redundant
# (~5 % of a call's client CPU); its pool holds every record write a writer has in flight.
TYPED_CLIENT_CONFIG = Config(parameter_validation=False, max_pool_connections=50)
_SERIALIZER, _DESERIALIZER = TypeSerializer(), TypeDeserializer()


def typed_client(session: Any, endpoint_url: str | None = None) -> SignedUpdates:
    """UpdateItem of a plain DynamoDB client of ``session`` (a boto3 Session) for ``StateTable.update_values``: same
    credentials, region, endpoint resolution (AWS_ENDPOINT_URL_DYNAMODB included), retries and TLS as any client
    of it; sent through the signed lane."""
    return SignedUpdates(session, session.client("dynamodb", endpoint_url=endpoint_url, config=TYPED_CLIENT_CONFIG))


class StateTable:
    def __init__(self, name: str, resource: Any, typed: Any | None = None) -> None:
        self.name = name
        # Created through the resource so that it takes and returns plain Python values.
        self.client = resource.meta.client
        self._typed = typed  # a plain client (``typed_client``) of the same account, or None

    def conditional_failure(self, exc: Exception) -> bool:
        return isinstance(exc, self.client.exceptions.ConditionalCheckFailedException) or (
            getattr(exc, "response", {}).get("Error", {}).get("Code") == "ConditionalCheckFailedException")

    def get(self, pk: str, sk: str, *, consistent: bool = False) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.client.get_item(TableName=self.name, Key=key(pk, sk),
                                                           ConsistentRead=consistent).get("Item")
        return item

    def put(self, item: dict[str, Any], **condition: Any) -> None:
        self.client.put_item(TableName=self.name, Item=item, **condition)

    def update(self, item_key: dict[str, str], **expression: Any) -> dict[str, Any]:
        attributes: dict[str, Any] = self.client.update_item(TableName=self.name, Key=item_key,
                                                             **expression).get("Attributes", {})
        return attributes

    def update_values(self, item_key: dict[str, str], values: dict[str, Any], **expression: Any) -> dict[str, Any]:
        """``update`` with ExpressionAttributeValues ``values``, through the plain client when there is one: the
        key and values typed here (strings and None are all the hot write sends), the returned attributes plain."""
        if self._typed is None:
            return self.update(item_key, ExpressionAttributeValues=values, **expression)
        answer = self._typed.update_item(TableName=self.name, Key=_typed_map(item_key),
                                         ExpressionAttributeValues=_typed_map(values), **expression)
        return {name: _DESERIALIZER.deserialize(value) for name, value in answer.get("Attributes", {}).items()}

    def delete(self, item_key: dict[str, str], **condition: Any) -> None:
        self.client.delete_item(TableName=self.name, Key=item_key, **condition)

    def query(self, pk: str, projection: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {"TableName": self.name, "KeyConditionExpression": "pk = :pk",
                                  "ExpressionAttributeValues": {":pk": pk}}
        if projection:
            names = _names(projection)
            kwargs.update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
        return self._pages(kwargs)

    def query_range(self, pk: str, low: str, high: str) -> Iterator[dict[str, Any]]:
        """Items with ``low <= sk <= high``, eventually consistent (billed on the size read, not per item)."""
        kwargs: dict[str, Any] = {"TableName": self.name,
                                  "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
                                  "ExpressionAttributeValues": {":pk": pk, ":lo": low, ":hi": high}}
        return self._pages(kwargs)

    def _pages(self, kwargs: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item a query matches, page after page."""
        while True:
            page = self.client.query(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def newest(self, pk: str, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` items of a partition with the highest sort keys, highest first."""
        page = self.client.query(TableName=self.name, KeyConditionExpression="pk = :pk",
                                 ExpressionAttributeValues={":pk": pk}, ScanIndexForward=False, Limit=limit)
        items: list[dict[str, Any]] = page.get("Items", [])
        return items

    def get_many(self, pk: str, sort_keys: Iterable[int | str], projection: Sequence[str] = (), *,
                 consistent: bool = True) -> list[dict[str, Any]]:
        unique = list(dict.fromkeys(str(s) for s in sort_keys))
        items: list[dict[str, Any]] = []
        for start in range(0, len(unique), BATCH_GET_LIMIT):
            batch = [key(pk, s) for s in unique[start : start + BATCH_GET_LIMIT]]
            items.extend(self._batch_get(batch, projection, consistent))
        return items

    def get_keys(self, keys: Sequence[dict[str, str]]) -> list[dict[str, Any]]:
        """Items by full key (any partitions), in batches of up to 100."""
        items: list[dict[str, Any]] = []
        for start in range(0, len(keys), BATCH_GET_LIMIT):
            items.extend(self._batch_get(list(keys[start : start + BATCH_GET_LIMIT]), (), True))
        return items

    def put_many(self, items: Iterable[dict[str, Any]]) -> None:
        self.write_many({"PutRequest": {"Item": item}} for item in items)

    def delete_many(self, keys: Iterable[dict[str, str]]) -> None:
        self.write_many({"DeleteRequest": {"Key": k}} for k in keys)

    def write_many(self, requests: Iterable[dict[str, Any]]) -> None:
        """BatchWriteItem, 25 at a time (the last request for a key wins), retrying what DynamoDB leaves."""
        unique = list({_request_key(r): r for r in requests}.values())
        for start in range(0, len(unique), BATCH_WRITE_LIMIT):
            pending: dict[str, Any] = {self.name: unique[start : start + BATCH_WRITE_LIMIT]}
            for attempt in range(MAX_UNPROCESSED_RETRIES):
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break
                time.sleep(min(0.05 * 2**attempt, 1.0))
            else:
                raise RuntimeError("DynamoDB left writes unprocessed after retries")

    def _batch_get(self, keys: list[dict[str, str]], projection: Sequence[str], consistent: bool
                   ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        spec: dict[str, Any] = {"Keys": keys, "ConsistentRead": consistent}
        if projection:
            names = _names(projection)
            spec.update(ProjectionExpression=", ".join(names), ExpressionAttributeNames=names)
        request = {self.name: spec}
        for attempt in range(MAX_UNPROCESSED_RETRIES):
            response = self.client.batch_get_item(RequestItems=request)
            items.extend(response.get("Responses", {}).get(self.name, []))
            request = response.get("UnprocessedKeys") or {}
            if not request:
                return items
            time.sleep(min(0.05 * 2**attempt, 1.0))
        raise RuntimeError("DynamoDB left keys unprocessed after retries")


def _names(projection: Sequence[str]) -> dict[str, str]:
    return {f"#p{i}": name for i, name in enumerate(projection)}


def _request_key(request: dict[str, Any]) -> tuple[str, str]:
    body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
    return body["pk"], body["sk"]


def _typed_map(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: _typed_value(value) for name, value in values.items()}


def _typed_value(value: Any) -> dict[str, Any]:
    """A DynamoDB attribute value; strings and None directly (the hot write's values), others as boto3 types them."""
    if type(value) is str:
        return {"S": value}
    if value is None:
        return {"NULL": True}
    return _SERIALIZER.serialize(value)  # type: ignore[no-any-return]


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """DynamoDB returns numbers as Decimal; models want ints."""
    return {k: (int(v) if type(v).__name__ == "Decimal" else v) for k, v in item.items()}
