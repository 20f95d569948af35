"""DynamoDB request units as AWS bills them, metered where the requests arrive (moto's request handler in
the bench process), per key family (the part of ``pk`` before the first ``#``: REC, POLL, JOB, LIMIT ...).

Billing rules (``../shared/reference/aws-costs.md``, and AWS's "Read/write capacity mode" page):
- a write costs one unit per started KB of the larger of the item before and after it, at least one; a
  write whose condition fails is billed as well (on the stored item);
- a read costs one unit per started 4 KB of the item, at least one; eventually consistent reads half that;
- BatchGetItem and BatchWriteItem are billed per item;
- a Query is billed on the total size of the items it reads (before any projection), per started 4 KB,
  at least one read.

Item sizes are moto's (attribute names plus values, numbers by their digits), which is how DynamoDB
counts them to within the few bytes of its number encoding.
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.responses import DynamoHandler

WRITE_KB = 1024
READ_KB = 4096
QUERY_PAGE_BYTES = 1024 * 1024


class DynamoUnits:
    def __init__(self) -> None:
        self.reads: dict[str, float] = defaultdict(float)
        self.writes: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()
        self._originals: dict[str, Callable[..., Any]] = {}

    # -- installing ---------------------------------------------------------------------------
    def install(self) -> DynamoUnits:
        meters = {"get_item": self._get_item, "batch_get_item": self._batch_get_item, "query": self._query,
                  "put_item": self._put_item, "update_item": self._write_one, "delete_item": self._write_one,
                  "batch_write_item": self._batch_write_item}
        for name, meter in meters.items():
            original = getattr(DynamoHandler, name)
            self._originals[name] = original
            setattr(DynamoHandler, name, _metered(original, meter))
        return self

    def uninstall(self) -> None:
        for name, original in self._originals.items():
            setattr(DynamoHandler, name, original)
        self._originals.clear()

    def snapshot(self) -> dict[str, dict[str, float]]:
        with self._lock:
            return {"read": dict(self.reads), "write": dict(self.writes)}

    # -- reads --------------------------------------------------------------------------------
    def _get_item(self, handler: Any, run: Callable[[], Any]) -> Any:
        body = handler.body
        self._read(_family(body["Key"]), _stored_size(handler, body["TableName"], body["Key"]),
                   body.get("ConsistentRead", False))
        return run()

    def _batch_get_item(self, handler: Any, run: Callable[[], Any]) -> Any:
        for table, spec in handler.body["RequestItems"].items():
            for key in spec["Keys"]:
                self._read(_family(key), _stored_size(handler, table, key), spec.get("ConsistentRead", False))
        return run()

    def _query(self, handler: Any, run: Callable[[], Any]) -> Any:
        body = handler.body
        values = body.get("ExpressionAttributeValues", {})
        pk = values.get(":pk")
        if pk is not None:  # the connector's queries are "pk = :pk", some "AND sk BETWEEN :lo AND :hi"
            size = _partition_page_size(handler, body["TableName"], pk, body.get("ExclusiveStartKey"),
                                        values.get(":lo"), values.get(":hi"))
            self._read(str(pk.get("S", "")).split("#", 1)[0], size, body.get("ConsistentRead", False))
        return run()

    def _read(self, family: str, size: int, consistent: bool) -> None:
        units = max(1, math.ceil(size / READ_KB)) * (1.0 if consistent else 0.5)
        with self._lock:
            self.reads[family] += units

    # -- writes -------------------------------------------------------------------------------
    def _put_item(self, handler: Any, run: Callable[[], Any]) -> Any:
        body = handler.body
        table = handler.dynamodb_backend.get_table(body["TableName"])
        key = {name: body["Item"][name] for name in _key_names(table)}
        size = max(_stored_size(handler, body["TableName"], key),
                   sum(len(k.encode()) + DynamoType(v).size() for k, v in body["Item"].items()))
        with self._write(key, lambda: size):
            return run()

    def _write_one(self, handler: Any, run: Callable[[], Any]) -> Any:
        body = handler.body
        before = _stored_size(handler, body["TableName"], body["Key"])
        with self._write(body["Key"], lambda: max(before, _stored_size(handler, body["TableName"], body["Key"]))):
            return run()

    def _batch_write_item(self, handler: Any, run: Callable[[], Any]) -> Any:
        for table_name, requests in handler.body["RequestItems"].items():
            table = handler.dynamodb_backend.get_table(table_name)
            for request in requests:
                if "PutRequest" in request:
                    item = request["PutRequest"]["Item"]
                    key = {name: item[name] for name in _key_names(table)}
                    size = max(_stored_size(handler, table_name, key),
                               sum(len(k.encode()) + DynamoType(v).size() for k, v in item.items()))
                else:
                    key = request["DeleteRequest"]["Key"]
                    size = _stored_size(handler, table_name, key)
                self._add_write(_family(key), size)
        return run()

    @contextmanager
    def _write(self, key: dict[str, Any], size_after: Callable[[], int]) -> Iterator[None]:
        try:
            yield
        finally:  # a failed condition is billed too
            self._add_write(_family(key), size_after())

    def _add_write(self, family: str, size: int) -> None:
        with self._lock:
            self.writes[family] += max(1, math.ceil(size / WRITE_KB))


def _metered(original: Callable[..., Any], meter: Callable[[Any, Callable[[], Any]], Any]) -> Callable[..., Any]:
    def metered(handler: Any) -> Any:
        return meter(handler, lambda: original(handler))

    return metered


def _family(key: dict[str, Any]) -> str:
    return str(key.get("pk", {}).get("S", "")).split("#", 1)[0]


def _key_names(table: Any) -> list[str]:
    return [n for n in (table.hash_key_attr, table.range_key_attr) if n]


def _stored_size(handler: Any, table_name: str, key: dict[str, Any]) -> int:
    try:
        item = handler.dynamodb_backend.get_item(table_name, key)
    except Exception:  # noqa: BLE001 - a bad request is answered by moto itself, and costs nothing here
        return 0
    return int(item.size()) if item is not None else 0


def _partition_page_size(handler: Any, table_name: str, pk: dict[str, Any], start: dict[str, Any] | None,
                         low: dict[str, Any] | None = None, high: dict[str, Any] | None = None) -> int:
    """Bytes one Query page reads from a partition: items after ``start`` (and within ``low``..``high``), up to
    DynamoDB's 1 MB page."""
    table = handler.dynamodb_backend.get_table(table_name)
    partition = table.items.get(DynamoType(pk), {})
    after = DynamoType(start[table.range_key_attr]) if start else None
    total = 0
    for range_key in sorted(partition, key=lambda k: k.value):
        if (after is not None and not range_key.value > after.value) or \
                (low is not None and range_key.value < DynamoType(low).value):
            continue
        if high is not None and range_key.value > DynamoType(high).value:
            break
        total += partition[range_key].size()
        if total >= QUERY_PAGE_BYTES:
            break
    return total
