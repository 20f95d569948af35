"""The bench's SQS meter bills as AWS does: each 64 KB chunk of a call's payload (message bodies and attributes sent,
or received) is one request, at least one a call; deletes are one each. Both protocols moto answers: boto3's JSON,
and the query protocol (form fields in, XML out)."""

from __future__ import annotations

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

from bench.sqs_requests import EMPTY_RECEIVE, SqsCounts, SqsRequests
from localrun.aws import LocalAws

KB = 1024
FORM = "application/x-www-form-urlencoded; charset=utf-8"


@pytest.fixture(scope="module")
def sqs():
    counter = SqsRequests.installed()
    try:
        with LocalAws() as aws:
            yield aws, counter
    finally:
        SqsRequests.uninstall()


def spent(counter: SqsRequests, action) -> SqsCounts:
    before = counter.snapshot()
    action()
    return counter.snapshot() - before


def batch(sizes: list[int]) -> list[dict]:
    return [{"Id": str(n), "MessageBody": "é" * (size // 2)} for n, size in enumerate(sizes)]  # é: 2 UTF-8 bytes


def test_sends_and_receives_are_billed_per_64_kb_of_payload(sqs):
    aws, counter = sqs
    client = aws.client("sqs")
    large, tiny = (client.create_queue(QueueName=name)["QueueUrl"] for name in ("large", "tiny"))

    def send() -> None:
        client.send_message_batch(QueueUrl=large, Entries=batch([30 * KB] * 3))  # 90 KB: 2 requests
        client.send_message_batch(QueueUrl=tiny, Entries=batch([10] * 10))  # 100 bytes: 1

    sent = spent(counter, send)
    assert sent.calls == {"SendMessageBatch": 2}
    assert sent.billed == {"SendMessageBatch": 3}

    received: list[dict] = []

    def receive() -> None:
        for url in (large, tiny):
            received.extend(client.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"])

    got = spent(counter, receive)
    assert len(received) == 13
    assert got.calls == {"ReceiveMessage": 2}
    assert got.billed == {"ReceiveMessage": 3}

    def delete() -> None:
        for url, messages in ((large, received[:3]), (tiny, received[3:])):
            client.delete_message_batch(QueueUrl=url, Entries=[
                {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)])

    assert spent(counter, delete).billed == {"DeleteMessageBatch": 2}
    empty = spent(counter, lambda: client.receive_message(QueueUrl=large, MaxNumberOfMessages=10))
    assert empty.billed == {EMPTY_RECEIVE: 1}


def test_message_attributes_count_and_a_250_kb_payload_is_4_requests(sqs):
    aws, counter = sqs
    client = aws.client("sqs")
    url = client.create_queue(QueueName="attributes")["QueueUrl"]
    # 60 KB of body and a 5 KB attribute: 65 KB, past one chunk only with the attribute counted
    attributes = {"note": {"DataType": "String", "StringValue": "a" * 5 * KB}}
    sent = spent(counter, lambda: client.send_message(QueueUrl=url, MessageBody="b" * 60 * KB,
                                                      MessageAttributes=attributes))
    assert sent.billed == {"SendMessage": 2}
    got = spent(counter, lambda: client.receive_message(QueueUrl=url, MessageAttributeNames=["All"]))
    assert got.billed == {"ReceiveMessage": 2}

    # a binary value counts as its bytes, not its base64 (9.3 KB, which would make this 2)
    binary = {"blob": {"DataType": "Binary", "BinaryValue": bytes(7 * KB)}}
    sent = spent(counter, lambda: client.send_message(QueueUrl=url, MessageBody="d" * 56 * KB,
                                                      MessageAttributes=binary))
    got = spent(counter, lambda: client.receive_message(QueueUrl=url, MessageAttributeNames=["All"]))
    assert (sent.billed, got.billed) == ({"SendMessage": 1}, {"ReceiveMessage": 1})

    assert spent(counter, lambda: client.send_message(QueueUrl=url, MessageBody="c" * 250 * KB)).billed == \
        {"SendMessage": 4}


def test_the_query_protocol_is_billed_alike(sqs):
    """Form fields in, XML out: what an SDK on the query protocol sends, signed as boto3 signs it."""
    aws, counter = sqs
    client = aws.client("sqs")
    url = client.create_queue(QueueName="query")["QueueUrl"]
    credentials = aws.session().get_credentials()

    def call(action: str, **fields: str) -> str:
        request = AWSRequest("POST", f"{aws.endpoint_url}/", headers={"Content-Type": FORM},
                             data={"Action": action, "Version": "2012-11-05", "QueueUrl": url, **fields})
        SigV4Auth(credentials, "sqs", aws.region).add_auth(request)
        prepared = request.prepare()
        answer = requests.post(prepared.url, data=prepared.body, headers=dict(prepared.headers), timeout=10)
        answer.raise_for_status()
        return answer.text

    entries = {f"SendMessageBatchRequestEntry.{n}.{key}": value for n in (1, 2, 3)
               for key, value in (("Id", str(n)), ("MessageBody", "q" * 30 * KB))}
    assert spent(counter, lambda: call("SendMessageBatch", **entries)).billed == {"SendMessageBatch": 2}

    answers: list[str] = []
    got = spent(counter, lambda: answers.append(call("ReceiveMessage", MaxNumberOfMessages="10")))
    assert answers[0].lstrip().startswith("<") and answers[0].count("<Body>") == 3  # XML, all three
    assert got.billed == {"ReceiveMessage": 2}
