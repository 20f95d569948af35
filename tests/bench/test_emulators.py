"""DynamoDB and SQS on emulator processes of their own: the stack's table and queues are copied there with
their shape, and every client (the bench's, the handlers' through AWS_ENDPOINT_URL_<SERVICE>) reaches them;
the emulator servers keep connections open."""

from __future__ import annotations

import json
import logging

import boto3

from bench.emulators import SplitAws
from bench.fanout import _schedule_seconds
from bench.latency import ideal_records_per_second
from bench.models import DEFAULT_BUDGET, FULL_BUDGET
from localrun.aws import deploy_template
from localrun.environment import TEMPLATE


def test_stack_moves_to_service_processes(monkeypatch, caplog):
    with SplitAws() as aws:
        aws.reset()
        stack = deploy_template(aws, TEMPLATE, parameters={"MarketoMunchkinId": "123-ABC-456"})
        old_queue = stack.resources["SyncQueue"]
        aws.move_stack(stack)
        table = stack.resources["StateTable"]
        dynamodb, sqs = aws.emulators["dynamodb"].url, aws.emulators["sqs"].url
        assert aws.env()["AWS_ENDPOINT_URL_DYNAMODB"] == dynamodb and aws.env()["AWS_ENDPOINT_URL_SQS"] == sqs
        assert stack.resources["SyncQueue"] != old_queue and stack.resources["SyncQueue"].startswith(sqs)

        # A handler's default boto3 clients follow the per-service variables.
        for name, value in aws.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a fresh default session, the test's own
        boto3.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "T#1"}, "sk": {"S": "1"}})
        in_child = aws._client_at("dynamodb").get_item(TableName=table, Key={"pk": {"S": "T#1"}, "sk": {"S": "1"}})
        in_main = aws.session().client("dynamodb", endpoint_url=aws.endpoint_url).get_item(
            TableName=table, Key={"pk": {"S": "T#1"}, "sk": {"S": "1"}})
        assert "Item" in in_child and "Item" not in in_main

        attributes = aws.client("sqs").get_queue_attributes(QueueUrl=stack.resources["SyncQueue"],
                                                           AttributeNames=["All"])["Attributes"]
        redrive = json.loads(attributes["RedrivePolicy"])
        assert redrive["deadLetterTargetArn"] == stack.queue_arn("SyncDeadLetterQueue")
        assert attributes["VisibilityTimeout"] == aws.session().client("sqs", endpoint_url=aws.endpoint_url) \
            .get_queue_attributes(QueueUrl=old_queue, AttributeNames=["VisibilityTimeout"])["Attributes"][
                "VisibilityTimeout"]

        caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
        client = aws._client_at("sqs")
        for _ in range(3):
            client.list_queues()
        assert not [r for r in caplog.records if "Resetting dropped connection" in r.getMessage()]

        # The SQS process meters its requests as calls and as billed: a 100 KB message is 2 requests.
        before = aws.sqs_requests()
        client.send_message(QueueUrl=stack.resources["SyncQueue"], MessageBody="x" * 100 * 1024)
        sent = aws.sqs_requests() - before
        assert (sent.calls, sent.billed) == ({"SendMessage": 1}, {"SendMessage": 2})


def test_ideal_rate_is_the_smaller_of_budget_and_concurrency_over_latency():
    assert ideal_records_per_second(DEFAULT_BUDGET, 0.5) == 750  # 2.5 calls/s budget, 10 calls/s possible
    assert ideal_records_per_second(DEFAULT_BUDGET, 2.0) == 750  # 5 in flight / 2 s = 2.5 calls/s
    assert ideal_records_per_second(FULL_BUDGET, 2.0) == 1500
    assert ideal_records_per_second(DEFAULT_BUDGET, 4.0) == 375


def test_schedule_interval_is_read_from_the_template():
    assert _schedule_seconds() == 900


def test_the_bench_runs_as_many_writers_as_the_template_deploys():
    from bench.template_defaults import parameter_default, writer_concurrency

    calls = parameter_default("MarketoMaxConcurrentCalls")
    assert writer_concurrency(calls) == 2 * calls  # the writer event source's MaximumConcurrency
