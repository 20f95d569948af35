"""The signed lane of the record-state write: it answers successes and the errors the client does not retry
itself, exactly as the client would, and hands the rest (5xx, throttling) to the client, whose retries then
take the call."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
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


class Answering(BaseHTTPRequestHandler):
    """Every request gets ``status`` and ``body``."""

    status, body = 503, b""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: Any) -> None:
        pass


def answering(status: int, error_type: str = "") -> type[Answering]:
    body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{error_type}", "message": "from the test"})
    return type("Answer", (Answering,), {"status": status, "body": body.encode() if error_type else b""})


@contextmanager
def lane_reaching(aws: LocalAws, handler: type[Answering]) -> Iterator[tuple[SignedUpdates, CountingClient]]:
    """A lane whose requests reach a server answering as ``handler`` does, its client (with its retries) moto."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        elsewhere = plain_client(aws, f"http://127.0.0.1:{server.server_address[1]}")
        client = CountingClient(plain_client(aws, aws.endpoint_url), meta_of=elsewhere)
        yield SignedUpdates(aws.session(), client), client
    finally:
        server.shutdown()


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


@pytest.mark.parametrize("handler", [answering(503), answering(400, "ThrottlingException"),
                                     answering(400, "ProvisionedThroughputExceededException")],
                         ids=["unavailable", "throttled", "over-capacity"])
def test_answers_the_client_retries_are_handed_to_it(aws: LocalAws, handler: type[Answering]):
    with lane_reaching(aws, handler) as (lane, client):
        sk = handler.__name__ + str(handler.status) + handler.body.decode()[-30:]
        assert update(lane, sk, "v1") is None
    assert (stored(aws, sk), client.calls) == ("v1", 1)


def test_errors_the_client_does_not_retry_are_raised_as_it_raises_them(aws: LocalAws):
    """E.g. an injected failure standing for a crash after Marketo accepted the chunk: not made again."""
    with lane_reaching(aws, answering(400, "InternalFailure")) as (lane, client), pytest.raises(ClientError) as err:
        update(lane, "3", "v1")
    assert (err.value.response["Error"]["Code"], client.calls) == ("InternalFailure", 0)
