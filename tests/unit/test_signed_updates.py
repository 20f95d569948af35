"""The signed lane of the record-state write: it answers successes and the errors the client does not retry
itself, exactly as the client would, and hands the rest (5xx, throttling) to the client, whose retries then
take the call."""

from __future__ import annotations

import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
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


class AnsweringAtOnce(BaseHTTPRequestHandler):
    """A keep-alive server that answers each request in one write, as DynamoDB's front end does."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers["Content-Length"]))
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    def log_message(self, *args: Any) -> None:
        pass


def test_a_write_does_not_wait_on_the_servers_delayed_ack(aws: LocalAws):
    """The body leaves right behind the headers (TCP_NODELAY, as botocore sets it): without it each write waited
    ~40 ms for the server to acknowledge the headers (urllib3 2 sends the two apart)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), AnsweringAtOnce)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        lane = SignedUpdates(aws.session(), plain_client(aws, f"http://127.0.0.1:{server.server_address[1]}"))
        update(lane, "warm", "v1")  # the connection is made
        started = time.monotonic()
        for n in range(20):
            update(lane, "ack", f"v{n:02d}")
        assert time.monotonic() - started < 20 * 0.02  # ~0.5 ms a write here; 44 ms without TCP_NODELAY
    finally:
        server.shutdown()


@pytest.mark.parametrize(("endpoint", "token"), [("http://127.0.0.1:4566", None),
                                                 ("https://dynamodb.eu-north-1.amazonaws.com", "session-token"),
                                                 ("https://dynamodb.eu-north-1.amazonaws.com:443", None)])
def test_the_signature_is_botocores(monkeypatch: pytest.MonkeyPatch, endpoint: str, token: str | None):
    """The lane signs as botocore's SigV4 signer signs the same request at the same moment."""
    from botocore import auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    from ml_connector.state.dynamodb.signed_updates import CONTENT_TYPE, TARGET, UpdateItemSigner, _host

    moment = datetime(2026, 12, 6, 23, 59, 59, tzinfo=UTC)
    monkeypatch.setattr(auth, "get_current_datetime", lambda: moment.replace(tzinfo=None))
    body = json.dumps({"TableName": TABLE, "Key": {"pk": {"S": "REC#c1#customer"}, "sk": {"S": "1"}}}).encode()
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    theirs = AWSRequest("POST", endpoint + "/", data=body, headers={"Content-Type": CONTENT_TYPE,
                                                                    "X-Amz-Target": TARGET})
    auth.SigV4Auth(credentials, "dynamodb", "eu-north-1").add_auth(theirs)
    signer = UpdateItemSigner(_host(endpoint), "eu-north-1")
    for _ in range(2):  # the second from the kept signing key
        ours = signer.headers(body, credentials.access_key, credentials.secret_key, token, now=moment)
        assert ours["authorization"] == theirs.headers["Authorization"]
        assert {k: v for k, v in ours.items() if k != "authorization"} == {
            k.lower(): v for k, v in theirs.headers.items() if k != "Authorization"} | {"host": _host(endpoint)}


class AnsweringOnceThenClosing(AnsweringAtOnce):
    """Answers, then drops the kept-alive connection, as a server does with an idle one."""

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        super().do_POST()
        self.close_connection = True


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_connection_the_server_dropped_is_not_used_again(aws: LocalAws):
    with serving(AnsweringOnceThenClosing) as url:
        client = CountingClient(plain_client(aws, aws.endpoint_url), meta_of=plain_client(aws, url))
        lane = SignedUpdates(aws.session(), client)
        assert update(lane, "dropped", "v1") is None  # answered by the server
        update(lane, "dropped", "v2")  # the dropped connection fails: the client makes this call (to moto)
        update(lane, "dropped", "v3")  # a new connection: the server answers again
    assert (client.calls, stored(aws, "dropped")) == (1, "v2")


def self_signed(directory: Any) -> tuple[ssl.SSLContext, str]:
    """A server context with a certificate for 127.0.0.1 that no public bundle holds, and its PEM file."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
                   .not_valid_after(now + timedelta(hours=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, str(cert_file)


def test_tls_is_verified_against_the_bundle(aws: LocalAws, tmp_path: Any, monkeypatch: pytest.MonkeyPatch):
    """A server whose certificate is in AWS_CA_BUNDLE answers the lane; without it the lane refuses the
    certificate and hands the call to the client (here moto over plain HTTP, to see that it did)."""
    context, bundle = self_signed(tmp_path)
    with serving(AnsweringAtOnce, tls=context) as url:
        for trusted in (True, False):
            if trusted:
                monkeypatch.setenv("AWS_CA_BUNDLE", bundle)
            else:
                monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
            client = CountingClient(plain_client(aws, aws.endpoint_url), meta_of=plain_client(aws, url))
            update(SignedUpdates(aws.session(), client), f"tls-{trusted}", "v1")
            assert client.calls == (0 if trusted else 1)
