"""The signed lane of the record-state write: it answers successes and failed conditions itself, exactly as the
client would, and hands every other answer to the client, whose retries then take the call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localrun.aws import LocalAws
from ml_connector.state.dynamodb.signed_updates import SignedUpdates
from ml_connector.state.dynamodb.table import TYPED_CLIENT_CONFIG

TABLE = "signed-updates"
GUARDED = {"UpdateExpression": "SET v = :v", "ConditionExpression": "attribute_not_exists(v) OR v <= :v",
           "ReturnValues": "UPDATED_OLD"}


class CountingClient:
    """A client whose ``update_item`` calls are counted; ``meta`` (endpoint, region, config) may be another's."""

    def __init__(self, client: Any, meta_of: Any | None = None) -> None:
        self._client, self.meta, self.calls = client, (meta_of or client).meta, 0

    def update_item(self, **request: Any) -> dict[str, Any]:
        self.calls += 1
        answer: dict[str, Any] = self._client.update_item(**request)
        return answer


class Unavailable(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    with LocalAws() as local:
        local.client("dynamodb").create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        yield local


def plain_client(aws: LocalAws, endpoint_url: str) -> Any:
    return aws.session().client("dynamodb", endpoint_url=endpoint_url, config=TYPED_CLIENT_CONFIG)


def update(lane: SignedUpdates, sk: str, version: str) -> dict[str, Any] | None:
    """The attributes the update replaced, as the answer types them."""
    return lane.update_item(TableName=TABLE, Key={"pk": {"S": "REC#c1#customer"}, "sk": {"S": sk}},
                            ExpressionAttributeValues={":v": {"S": version}}, **GUARDED).get("Attributes")


def stored(aws: LocalAws, sk: str) -> str:
    item = aws.client("dynamodb").get_item(TableName=TABLE, Key={"pk": {"S": "REC#c1#customer"}, "sk": {"S": sk}})
    return str(item["Item"]["v"]["S"])


def test_successes_and_failed_conditions_are_answered_without_the_client(aws: LocalAws):
    client = CountingClient(plain_client(aws, aws.endpoint_url))
    lane = SignedUpdates(aws.session(), client)
    assert update(lane, "1", "v2") is None
    assert update(lane, "1", "v3") == {"v": {"S": "v2"}}  # typed, as the client answers
    with pytest.raises(ClientError) as refused:
        update(lane, "1", "v1")  # older than the recorded v3: the guard refuses it
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert (stored(aws, "1"), client.calls) == ("v3", 0)


def test_any_other_answer_is_handed_to_the_client(aws: LocalAws):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # The lane reaches a DynamoDB that answers 503; the client (with its retries) reaches moto.
        unavailable = plain_client(aws, f"http://127.0.0.1:{server.server_address[1]}")
        client = CountingClient(plain_client(aws, aws.endpoint_url), meta_of=unavailable)
        lane = SignedUpdates(aws.session(), client)
        assert update(lane, "2", "v1") is None
    finally:
        server.shutdown()
    assert (stored(aws, "2"), client.calls) == ("v1", 1)
