"""The window checkpoint in DynamoDB (moto): a checkpoint of 100k ids round-trips through parts under the
400 KB item limit, a new one replaces the old one's parts, and deleting it leaves nothing behind."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator

import pytest

from localrun.aws import LocalAws
from ml_connector.state.dynamodb import keys
from ml_connector.state.dynamodb.table import StateTable
from ml_connector.state.dynamodb.windows import PART_BYTES, DynamoWindows, pack
from ml_connector.state.models import WindowCheckpoint


@pytest.fixture(scope="module")
def table() -> Iterator[StateTable]:
    with LocalAws() as aws:
        aws.client("dynamodb").create_table(
            TableName="windows", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        yield StateTable("windows", aws.session().resource("dynamodb", endpoint_url=aws.endpoint_url))


def same(a: WindowCheckpoint | None, b: WindowCheckpoint) -> bool:
    """Equal, the customers read in any order (a set)."""
    assert a is not None
    def ordered(c: WindowCheckpoint) -> WindowCheckpoint:
        return c.model_copy(update={"read": sorted(c.read, key=str)})

    return ordered(a) == ordered(b)


def full_load(n: int) -> WindowCheckpoint:
    rng = random.Random(3)
    ids = sorted(rng.sample(range(10_000, 10_000 + 4 * n), n))
    half = n // 2
    return WindowCheckpoint(
        watermark=None, since=None, started="2026-06-01T12:00:00.000000Z", page_size=1000, passes=2, pages=40,
        total=n, window_total=n + 1, fresh_from="2026-06-01T11:55:00.000000Z",
        previous_fresh_from="2026-06-01T11:54:00.000000Z", newest="2026-06-01T11:59:00.000000Z",
        seen_before=ids[:half], seen_after=ids[half:], earlier=ids[::3], bad=["raw-abc", "17"], earlier_bad=["17"],
        sent=[(i, hashlib.sha256(str(i).encode()).hexdigest()[:8]) for i in ids],
        read=[(f"C{i}", i) for i in ids[:1000]] + [("BROKEN", None)])


def test_a_checkpoint_of_100k_ids_round_trips_in_parts_under_the_item_limit(table):
    windows, checkpoint = DynamoWindows(table), full_load(100_000)
    windows.save("c1", "customer", checkpoint)
    parts = [i for i in table.query(keys.windows("c1", "customer")) if i["sk"] != keys.WINDOW_META_SK]
    assert len(parts) >= 2 and all(len(bytes(p["data"].value)) <= PART_BYTES for p in parts)
    assert len(pack(checkpoint)) < 600_000  # 100k ids and their sent hashes (4 bytes each)
    assert same(windows.get("c1", "customer"), checkpoint)


def test_a_new_checkpoint_replaces_the_old_parts_and_delete_leaves_nothing(table):
    windows = DynamoWindows(table)
    windows.save("c1", "supplier", full_load(100_000))
    small = full_load(10)
    windows.save("c1", "supplier", small)
    assert same(windows.get("c1", "supplier"), small)
    assert len(list(table.query(keys.windows("c1", "supplier")))) == 2  # meta + one part
    windows.delete("c1", "supplier")
    assert windows.get("c1", "supplier") is None and not list(table.query(keys.windows("c1", "supplier")))


def test_the_payment_preload_round_trips_in_the_parts_not_the_meta_item(table):
    """50,000 customers' balances and their overdue invoices ride in the compressed parts; the META item (read
    first, consistently) stays small."""
    windows = DynamoWindows(table)
    checkpoint = full_load(1_000).model_copy(update={
        "payments_loaded": True, "invoices": [(f"C{i}", 100.5 + i, i % 3) for i in range(2_000)],
        "balances": [(i, f"C{i}", round(i * 1.25, 2)) for i in range(1, 50_001)] + [(None, "NOID", 7.0)]})
    windows.save("c1", "customer", checkpoint)
    meta = table.get(keys.windows("c1", "customer"), keys.WINDOW_META_SK)
    assert meta is not None and len(meta["window"]) < 2_000
    assert same(windows.get("c1", "customer"), checkpoint)
