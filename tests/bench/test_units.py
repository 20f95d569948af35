"""The bench's DynamoDB meter bills as AWS does: sizes rounded per 1 KB (writes) and 4 KB (reads), eventual
reads at half, failed conditional writes charged, batches per item, queries on what they read."""

from __future__ import annotations

import pytest

from bench.units import DynamoUnits
from localrun.aws import LocalAws


@pytest.fixture(scope="module")
def table():
    units = DynamoUnits().install()
    try:
        with LocalAws() as aws:
            client = aws.client("dynamodb")
            client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                      {"AttributeName": "sk", "AttributeType": "S"}],
                                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                           {"AttributeName": "sk", "KeyType": "RANGE"}])
            yield client, units
    finally:
        units.uninstall()


def spent(units: DynamoUnits, action) -> dict[str, dict[str, float]]:
    before = units.snapshot()
    action()
    after = units.snapshot()
    return {kind: {f: v - before[kind].get(f, 0.0) for f, v in after[kind].items() if v != before[kind].get(f, 0.0)}
            for kind in ("read", "write")}


def item(pk: str, sk: str, size: int) -> dict:
    return {"pk": {"S": pk}, "sk": {"S": sk}, "v": {"S": "x" * size}}


def test_writes_are_billed_per_started_kb_of_the_larger_item(table):
    client, units = table
    assert spent(units, lambda: client.put_item(TableName="t", Item=item("REC#a", "1", 2500))) == \
        {"read": {}, "write": {"REC": 3}}
    # shrinking the item still costs what the larger (stored) one did
    assert spent(units, lambda: client.put_item(TableName="t", Item=item("REC#a", "1", 10)))["write"] == {"REC": 3}
    assert spent(units, lambda: client.put_item(TableName="t", Item=item("REC#a", "2", 10)))["write"] == {"REC": 1}


def test_a_failed_conditional_write_is_billed(table):
    client, units = table
    client.put_item(TableName="t", Item=item("JOB#a", "1", 10))

    def refused() -> None:
        with pytest.raises(client.exceptions.ConditionalCheckFailedException):
            client.put_item(TableName="t", Item=item("JOB#a", "1", 10), ConditionExpression="attribute_not_exists(pk)")

    assert spent(units, refused)["write"] == {"JOB": 1}


def test_reads_are_billed_per_4_kb_and_half_when_eventually_consistent(table):
    client, units = table
    client.put_item(TableName="t", Item=item("POLL#a", "1", 5000))
    key = {"pk": {"S": "POLL#a"}, "sk": {"S": "1"}}
    assert spent(units, lambda: client.get_item(TableName="t", Key=key, ConsistentRead=True))["read"] == {"POLL": 2}
    assert spent(units, lambda: client.get_item(TableName="t", Key=key))["read"] == {"POLL": 1}
    missing = {"pk": {"S": "POLL#a"}, "sk": {"S": "none"}}
    assert spent(units, lambda: client.get_item(TableName="t", Key=missing))["read"] == {"POLL": 0.5}
    batch = {"t": {"Keys": [key, missing], "ConsistentRead": True}}
    assert spent(units, lambda: client.batch_get_item(RequestItems=batch))["read"] == {"POLL": 3}


def test_a_query_is_billed_on_the_total_size_it_reads(table):
    client, units = table
    for n in range(10):
        client.put_item(TableName="t", Item=item("QIDX#a", f"{n:02}", 1000))
    query = {"TableName": "t", "KeyConditionExpression": "pk = :pk",
             "ExpressionAttributeValues": {":pk": {"S": "QIDX#a"}}}
    assert spent(units, lambda: client.query(**query))["read"] == {"QIDX": 1.5}  # ~10 KB: 3 × 4 KB, halved
    assert spent(units, lambda: client.query(**query, ConsistentRead=True))["read"] == {"QIDX": 3}
    empty = {**query, "ExpressionAttributeValues": {":pk": {"S": "QIDX#none"}}}
    assert spent(units, lambda: client.query(**empty))["read"] == {"QIDX": 0.5}


def test_a_range_query_is_billed_on_the_items_in_its_range(table):
    client, units = table
    for n in range(10):
        client.put_item(TableName="t", Item=item("PAYB#a", f"{n:02}", 1000))
    query = {"TableName": "t", "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
             "ExpressionAttributeValues": {":pk": {"S": "PAYB#a"}, ":lo": {"S": "02"}, ":hi": {"S": "05"}}}
    assert spent(units, lambda: client.query(**query))["read"] == {"PAYB": 0.5}  # 4 items of ~1 KB
