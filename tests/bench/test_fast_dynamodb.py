"""The bench's DynamoDB speed-up answers every UpdateItem exactly as plain moto does: same returned
attributes, same errors, same stored items (plain SET updates take the fast path; the rest moto's own)."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bench import fast_dynamodb

KEY = {"pk": {"S": "REC#c#customer"}, "sk": {"S": "1"}}
RECORD_WRITE = {  # the connector's record-state write (state/dynamodb/versions.py)
    "UpdateExpression": "SET writtenVersion = :v, #h = :h, marketoId = :id",
    "ConditionExpression": "attribute_not_exists(writtenVersion) OR writtenVersion <= :v",
    "ExpressionAttributeNames": {"#h": "writtenHash"},
    "ReturnValues": "UPDATED_OLD",
}
REQUESTS: list[dict[str, Any]] = [
    {**RECORD_WRITE, "ExpressionAttributeValues": {":v": {"S": "0002"}, ":h": {"S": "a"}, ":id": {"N": "7"}}},
    {**RECORD_WRITE, "ExpressionAttributeValues": {":v": {"S": "0003"}, ":h": {"S": "b"}, ":id": {"N": "7"}}},
    # an older version: the condition fails, with and without the old item in the error
    {**RECORD_WRITE, "ExpressionAttributeValues": {":v": {"S": "0001"}, ":h": {"S": "c"}, ":id": {"N": "8"}}},
    {**RECORD_WRITE, "ExpressionAttributeValues": {":v": {"S": "0001"}, ":h": {"S": "c"}, ":id": {"N": "8"}},
     "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
    {"UpdateExpression": "SET n = :n, m = :m", "ExpressionAttributeValues": {":n": {"N": "1"}, ":m": {"L": []}},
     "ReturnValues": "ALL_NEW"},
    # not plain SETs: moto's path
    {"UpdateExpression": "SET n = n + :n", "ExpressionAttributeValues": {":n": {"N": "2"}}, "ReturnValues": "ALL_NEW"},
    {"UpdateExpression": "REMOVE writtenHash", "ReturnValues": "ALL_OLD"},
    {"UpdateExpression": "SET sk = :k", "ExpressionAttributeValues": {":k": {"S": "2"}}},
    {"UpdateExpression": "SET a = :missing", "ExpressionAttributeValues": {":n": {"N": "1"}}},
    {"UpdateExpression": "SET a = :a, a = :a", "ExpressionAttributeValues": {":a": {"N": "1"}}},
]


def outcomes() -> list[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-north-1")
        client.create_table(TableName="t", BillingMode="PAY_PER_REQUEST",
                            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"}],
                            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                       {"AttributeName": "sk", "KeyType": "RANGE"}])
        seen: list[Any] = []
        for request in REQUESTS:
            try:
                answer = client.update_item(TableName="t", Key=KEY, **request)
                seen.append(answer.get("Attributes"))
            except ClientError as error:
                seen.append((error.response["Error"]["Code"], error.response["Error"].get("Message"),
                             error.response.get("Item")))
            seen.append(client.get_item(TableName="t", Key=KEY, ConsistentRead=True).get("Item"))
        return seen


def test_plain_set_updates_match_moto():
    plain = outcomes()
    fast_dynamodb.install()
    try:
        fast = outcomes()
    finally:
        fast_dynamodb.uninstall()
    assert fast == plain
    assert plain[1]["writtenVersion"] == {"S": "0002"}  # the comparison saw real updates
    assert plain[4][0] == "ConditionalCheckFailedException"


@pytest.mark.parametrize(("expression", "expected"), [
    ("SET a = :a", [("a", ":a")]),
    ("set a=:a ,#b = :b", [("a", ":a"), ("B", ":b")]),
    ("SET a = a + :a", None),
    ("SET a = if_not_exists(a, :a)", None),
    ("SET a.b = :a", None),
    ("SET a = :a REMOVE b", None),
    ("SET #unknown = :a", None),
])
def test_only_plain_assignments_take_the_fast_path(expression, expected):
    assert fast_dynamodb.plain_assignments(expression, {"#b": "B"}) == expected
