"""An emulator speed-up for moto's DynamoDB, applied only in the bench's DynamoDB process: plain SET updates
without moto's expression validator.

moto spends ~5 ms of CPU on an UpdateItem, over half of it validating the update expression's syntax
tree (several full traversals per request), which makes one emulator process answer fewer than 200 record
writes a second: far below what the writers ask of it. For an update expression that only sets attributes
to placeholder values (``SET a = :a, #b = :b`` — what the connector's record-state writes are), the result
is fully determined: each named attribute takes the placeholder's value. ``install()`` applies those
directly, after moto's own checks (key, expected, condition expression) and with moto's item storage;
every other request (REMOVE, ADD, functions, arithmetic, nested paths, key attributes, unknown
placeholders, streams) takes moto's path unchanged. Parsed update expressions are also kept per text
(a copy is handed out, since moto's validator rewrites the tree it is given).
"""

from __future__ import annotations

import copy
import functools
import re
import threading
from collections.abc import Callable
from typing import Any

from moto.dynamodb import models as dynamodb_models
from moto.dynamodb import responses as dynamodb_responses
from moto.dynamodb.comparisons import get_expected
from moto.dynamodb.exceptions import ConditionalCheckFailed
from moto.dynamodb.models import DynamoDBBackend, create_condition_expression_parser
from moto.dynamodb.models.dynamo_type import DynamoType, Item

_NAME = r"(?:#?[A-Za-z_][A-Za-z0-9_]*)"
_ASSIGNMENT = rf"\s*({_NAME})\s*=\s*(:[A-Za-z0-9_]+)\s*"
_PLAIN_SET = re.compile(rf"^\s*SET{_ASSIGNMENT}(?:,{_ASSIGNMENT})*$", re.IGNORECASE)
_ASSIGNMENTS = re.compile(_ASSIGNMENT)
_MAX_VALUES_BYTES = 300 * 1024  # larger updates take moto's path (it checks the 400 KB item limit)

_ORIGINALS: dict[str, Any] = {}
_lock = threading.Lock()


def plain_assignments(expression: str | None, names: dict[str, str]) -> list[tuple[str, str]] | None:
    """[(attribute name, value placeholder)] of a SET-only expression with placeholder values, else None."""
    if not expression or not _PLAIN_SET.match(expression):
        return None
    pairs = []
    for name, placeholder in _ASSIGNMENTS.findall(expression.strip()[3:]):
        if name.startswith("#"):
            if name not in names:
                return None
            name = names[name]
        pairs.append((name, placeholder))
    if len({name for name, _ in pairs}) != len(pairs):
        return None  # one attribute twice: moto's validator reports it
    return pairs


def _fast_update_item(original: Callable[..., Item]) -> Callable[..., Item]:
    def update_item(backend: DynamoDBBackend, table_name: str, key: dict[str, dict[str, Any]],
                    update_expression: str, expression_attribute_names: dict[str, Any],
                    expression_attribute_values: dict[str, Any], attribute_updates: dict[str, Any] | None = None,
                    expected: dict[str, Any] | None = None, condition_expression: str | None = None,
                    return_values_on_condition_check_failure: str | None = None) -> Item:
        table = backend.get_table(table_name)
        pairs = None if attribute_updates else plain_assignments(update_expression, expression_attribute_names or {})
        values = expression_attribute_values or {}
        if (pairs is None or table.stream_shard is not None
                or any(n in table.attribute_keys or p not in values for n, p in pairs)
                or len(repr([values[p] for _, p in pairs])) > _MAX_VALUES_BYTES):
            return original(backend, table_name, key, update_expression, expression_attribute_names,
                            expression_attribute_values, attribute_updates, expected, condition_expression,
                            return_values_on_condition_check_failure)
        hash_value, range_value = backend.get_keys_value(table, key)
        item = table.get_item(hash_value, range_value)
        if not get_expected(expected or {}).expr(item):
            raise ConditionalCheckFailed
        condition = create_condition_expression_parser(condition_expression, expression_attribute_names,
                                                       expression_attribute_values).parse()
        if not condition.expr(item):
            if return_values_on_condition_check_failure == "ALL_OLD" and item is not None:
                raise ConditionalCheckFailed(item=item.to_json()["Attributes"])
            raise ConditionalCheckFailed
        if item is None:
            data: dict[str, Any] = {table.hash_key_attr: {hash_value.type: hash_value.value}}
            if range_value is not None:
                data[table.range_key_attr] = {range_value.type: range_value.value}  # type: ignore[index]
            item = table.put_item(data)
        for name, placeholder in pairs:
            item.attrs[name] = DynamoType(values[placeholder])
        return item

    return update_item


def _cached_make(original: Callable[[str], Any]) -> Callable[[str], Any]:
    parsed = functools.lru_cache(maxsize=256)(original)

    def make(expression: str) -> Any:
        return copy.deepcopy(parsed(expression))

    return make


def install() -> None:
    with _lock:
        if _ORIGINALS:
            return
        _ORIGINALS["update_item"] = DynamoDBBackend.update_item
        _ORIGINALS["make"] = dynamodb_models.UpdateExpressionParser.make
        DynamoDBBackend.update_item = _fast_update_item(DynamoDBBackend.update_item)  # type: ignore[method-assign]
        make = staticmethod(_cached_make(dynamodb_models.UpdateExpressionParser.make))
        dynamodb_models.UpdateExpressionParser.make = make  # type: ignore[method-assign]
        assert dynamodb_responses.UpdateExpressionParser is dynamodb_models.UpdateExpressionParser


def uninstall() -> None:
    with _lock:
        if not _ORIGINALS:
            return
        DynamoDBBackend.update_item = _ORIGINALS.pop("update_item")  # type: ignore[method-assign]
        dynamodb_models.UpdateExpressionParser.make = staticmethod(_ORIGINALS.pop("make"))  # type: ignore[method-assign]
