"""bench.fast_sqs changes moto's speed, not its behaviour: one script, run on plain and patched moto, sees the same."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from bench import fast_sqs

REGION = "eu-north-1"


def _client() -> Any:
    return boto3.client("sqs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def _receive(sqs: Any, url: str, n: int = 10, visibility: int | None = None) -> list[dict[str, Any]]:
    extra = {} if visibility is None else {"VisibilityTimeout": visibility}
    return sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=n, MessageSystemAttributeNames=["All"],
                               WaitTimeSeconds=0, **extra).get("Messages", [])


def _seen(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["Body"], m["Attributes"]["ApproximateReceiveCount"]) for m in messages]


def _error(call: Any) -> str:
    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def _count(sqs: Any, url: str) -> dict[str, str]:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]


def _script() -> list[Any]:
    """Receive, delete (twice), release, let receive counts reach the redrive limit; record what a client sees."""
    sqs = _client()
    dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="work", Attributes={
        "VisibilityTimeout": "600",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})})["QueueUrl"]
    for start in range(0, 30, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{start + i:02d}"}
                                                      for i in range(10)])
    trace: list[Any] = []
    first = _receive(sqs, url)
    trace.append(("first", _seen(first)))
    trace.append(("counts after receive", _count(sqs, url)))
    # Delete five, then the same handles again (a no-op), then a handle that never existed.
    entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(first[:5])]
    trace.append(("delete", sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Successful")))
    trace.append(("delete again", sqs.delete_message_batch(QueueUrl=url, Entries=entries).get("Successful")))
    trace.append(("unknown handle", _error(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle="nope"))))
    # The other five stay invisible (600 s) until released; the next receive skips them.
    trace.append(("second", _seen(_receive(sqs, url))))
    for m in first[5:]:
        sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
    trace.append(("visibility of deleted", _error(lambda: sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=first[0]["ReceiptHandle"], VisibilityTimeout=0))))
    trace.append(("counts after release", _count(sqs, url)))
    # Visibility 0: everything comes back at once; the second receive of a message is its last before the DLQ.
    rounds = []
    for _ in range(6):
        rounds.append(sorted(_seen(_receive(sqs, url, visibility=0))))
    trace.append(("rounds", rounds))
    trace.append(("left", _count(sqs, url)))
    trace.append(("dlq", sorted(_seen(_receive(sqs, dlq, visibility=0)))))
    old = first[5]["ReceiptHandle"]
    trace.append(("old handle in dlq", _error(lambda: sqs.delete_message(QueueUrl=dlq, ReceiptHandle=old))))
    sqs.purge_queue(QueueUrl=dlq)
    trace.append(("after purge", _count(sqs, dlq), _receive(sqs, dlq)))
    return trace


def _run(patched: bool) -> list[Any]:
    if patched:
        fast_sqs.install()
    try:
        with mock_aws():
            return _script()
    finally:
        if patched:
            fast_sqs.uninstall()


@pytest.fixture(autouse=True)
def _unpatched_around() -> Any:
    assert not fast_sqs.installed()
    yield
    assert not fast_sqs.installed()


def test_patched_moto_behaves_like_moto() -> None:
    plain = _run(patched=False)
    fast = _run(patched=True)
    assert fast == plain
    # And the script did exercise what it claims to.
    by_label = {entry[0]: entry[1:] for entry in plain}
    assert len(by_label["first"][0]) == 10
    assert by_label["unknown handle"] == ("ReceiptHandleIsInvalid",)
    assert by_label["delete again"][0] and len(by_label["delete again"][0]) == 5
    assert by_label["dlq"][0], "some messages reached the dead-letter queue"


def test_index_finds_handles_and_removes() -> None:
    fast_sqs.install()
    try:
        with mock_aws():
            sqs = _client()
            url = sqs.create_queue(QueueName="q")["QueueUrl"]
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(10)])
            got = _receive(sqs, url)
            for m in got:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            empty = {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}
            assert _count(sqs, url) == empty
    finally:
        fast_sqs.uninstall()
