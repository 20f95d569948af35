"""SqsEventSource: Lambda's SQS event source mapping semantics against moto's SQS."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from localrun.aws import DeployedStack
from localrun.event_source import SqsEventSource
from localrun.lambda_runtime import load_handler

FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "template.yaml"


def send(stack: DeployedStack, actions: list[str], queue: str = "WorkQueue") -> list[str]:
    sqs = stack.aws.client("sqs")
    ids: list[str] = []
    for start in range(0, len(actions), 10):
        entries = [{"Id": str(i), "MessageBody": json.dumps({"n": start + i, "action": action}),
                    "MessageAttributes": {"entity": {"DataType": "String", "StringValue": "customer"}}}
                   for i, action in enumerate(actions[start:start + 10])]
        ids += [m["MessageId"] for m in sqs.send_message_batch(QueueUrl=stack.resources[queue],
                                                               Entries=entries)["Successful"]]
    return ids


def depth(stack: DeployedStack, queue: str) -> int:
    attributes = stack.aws.client("sqs").get_queue_attributes(
        QueueUrl=stack.resources[queue],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])


def dlq_bodies(stack: DeployedStack) -> list[dict[str, Any]]:
    sqs = stack.aws.client("sqs")
    found: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=stack.resources["DeadLetterQueue"], MaxNumberOfMessages=10,
                                  VisibilityTimeout=60).get("Messages", [])
        if not got:
            return found
        found += [json.loads(m["Body"]) for m in got]


def calls(function: str = "WorkerFunction") -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = load_handler(function, FIXTURE_TEMPLATE).__globals__["CALLS"]
    return result


def test_settings_come_from_the_template(fixture_stack: DeployedStack) -> None:
    source = SqsEventSource(fixture_stack, "WorkerFunction")
    assert source.batch_size == 25 and source.report_item_failures
    assert source.queue_url == fixture_stack.resources["WorkQueue"]
    assert source.queue_arn == fixture_stack.queue_arn("WorkQueue")
    plain = SqsEventSource(fixture_stack, "PlainWorkerFunction")
    assert plain.batch_size == 10 and not plain.report_item_failures
    with pytest.raises(ValueError, match="EchoFunction"):
        SqsEventSource(fixture_stack, "EchoFunction")


def test_batches_fill_to_the_batch_size_and_records_look_like_lambdas(fixture_stack: DeployedStack) -> None:
    ids = send(fixture_stack, ["ok"] * 60)
    stats = SqsEventSource(fixture_stack, "WorkerFunction").drain()
    assert stats.batch_sizes == [25, 25, 10]
    assert (stats.batches, stats.messages, stats.succeeded, stats.failed, stats.handler_errors) == (3, 60, 60, 0, 0)
    assert [r["handled"] for r in stats.results] == [25, 25, 10]
    assert depth(fixture_stack, "WorkQueue") == 0
    records = [r for call in calls() for r in call["records"]]
    assert sorted(r["messageId"] for r in records) == sorted(ids)
    record = records[0]
    assert set(record) == {"messageId", "receiptHandle", "body", "attributes", "messageAttributes", "md5OfBody",
                           "md5OfMessageAttributes", "eventSource", "eventSourceARN", "awsRegion"}
    assert record["eventSource"] == "aws:sqs" and record["awsRegion"] == "eu-north-1"
    assert record["eventSourceARN"] == fixture_stack.queue_arn("WorkQueue")
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    assert set(record["attributes"]) >= {"ApproximateReceiveCount", "SentTimestamp", "SenderId",
                                         "ApproximateFirstReceiveTimestamp"}
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["messageAttributes"] == {"entity": {"stringValue": "customer", "stringListValues": [],
                                                      "binaryListValues": [], "dataType": "String"}}


def test_batch_size_override_and_max_batches(fixture_stack: DeployedStack) -> None:
    send(fixture_stack, ["ok"] * 20)
    stats = SqsEventSource(fixture_stack, "WorkerFunction", batch_size=7).drain(max_batches=2)
    assert stats.batch_sizes == [7, 7] and stats.succeeded == 14
    assert depth(fixture_stack, "WorkQueue") == 6


def test_reported_failures_are_redelivered_then_dead_lettered(fixture_stack: DeployedStack) -> None:
    actions = ["ok"] * 20
    for n in (3, 11, 17):
        actions[n] = "fail"
    send(fixture_stack, actions)
    stats = SqsEventSource(fixture_stack, "WorkerFunction").drain()
    # MaxReceiveCount is 3 in the fixture: each failing message is tried three times, then SQS moves it.
    assert stats.batch_sizes == [20, 3, 3]
    assert (stats.succeeded, stats.failed, stats.handler_errors) == (17, 9, 0)
    assert depth(fixture_stack, "WorkQueue") == 0
    assert sorted(b["n"] for b in dlq_bodies(fixture_stack)) == [3, 11, 17]
    counts = [r["attributes"]["ApproximateReceiveCount"] for call in calls()[1:] for r in call["records"]]
    assert counts == ["2"] * 3 + ["3"] * 3


def test_handler_exception_keeps_the_whole_batch(fixture_stack: DeployedStack) -> None:
    send(fixture_stack, ["ok", "ok", "raise", "ok", "ok"])
    source = SqsEventSource(fixture_stack, "WorkerFunction")
    first = source.drain(max_batches=1)
    assert (first.handler_errors, first.failed, first.succeeded, first.results) == (1, 5, 0, [])
    assert first.errors == ["RuntimeError: poison message in batch"]
    assert depth(fixture_stack, "WorkQueue") == 5  # nothing deleted, all visible again at once
    rest = source.drain()
    assert rest.handler_errors == 2 and rest.succeeded == 0
    assert len(dlq_bodies(fixture_stack)) == 5


def test_an_unusable_failure_report_fails_the_batch(fixture_stack: DeployedStack) -> None:
    send(fixture_stack, ["ok", "bad-report", "ok"])
    stats = SqsEventSource(fixture_stack, "WorkerFunction").drain(max_batches=1)
    assert (stats.failed, stats.succeeded, stats.handler_errors) == (3, 0, 0)
    assert depth(fixture_stack, "WorkQueue") == 3


def test_without_report_batch_item_failures_a_returned_list_is_ignored(fixture_stack: DeployedStack) -> None:
    send(fixture_stack, ["ok", "fail", "ok"], queue="PlainQueue")
    stats = SqsEventSource(fixture_stack, "PlainWorkerFunction").drain()
    assert (stats.succeeded, stats.failed) == (3, 0)
    assert depth(fixture_stack, "PlainQueue") == 0 and dlq_bodies(fixture_stack) == []
    assert len(calls("PlainWorkerFunction")) == 1 and calls("WorkerFunction") == []


def test_batching_window_waits_for_more_messages(fixture_stack: DeployedStack) -> None:
    send(fixture_stack, ["ok"])
    late = threading.Timer(0.15, send, args=(fixture_stack, ["ok"]))
    late.start()
    started = time.monotonic()
    stats = SqsEventSource(fixture_stack, "WorkerFunction", batch_size=2,
                           batching_window_s=2.0).drain(max_batches=1)
    late.join()
    assert stats.batch_sizes == [2]  # closed when full, long before the window ended
    assert 0.1 < time.monotonic() - started < 1.5


def test_empty_queue_and_idle_polls(fixture_stack: DeployedStack) -> None:
    started = time.monotonic()
    stats = SqsEventSource(fixture_stack, "WorkerFunction", batching_window_s=0.1).drain(idle_polls=2)
    assert stats.batches == 0 and stats.messages == 0
    assert time.monotonic() - started >= 0.2  # two empty windows
