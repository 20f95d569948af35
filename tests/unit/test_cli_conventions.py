"""CLI conventions that need no stack: every option documented, the native redrive call, the runs twin."""

from __future__ import annotations

import argparse

import boto3
from botocore.stub import Stubber

from cli.main import _parser
from ml_connector.config import RuntimeSettings
from ml_connector.queues import SyncQueues
from ml_connector.state import RunRecord
from ml_connector.state.memory import memory_state
from ml_connector.usecases.redrive_dead_letters import NATIVE, redrive_dead_letters


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))  # noqa: SLF001
    return dict(subs.choices)


def test_every_option_and_argument_has_help():
    parser = _parser()
    undocumented = []
    for name, command in {"": parser, **_commands(parser)}.items():
        if name == "demo":  # forwarded as is to the demo's own parser, which documents itself
            continue
        for action in command._actions:  # noqa: SLF001
            if not isinstance(action, argparse._SubParsersAction) and not action.help:  # noqa: SLF001
                undocumented.append(f"{name} {action.dest}")
    assert undocumented == []


def test_json_before_or_after_the_subcommand():
    parser = _parser()
    assert parser.parse_args(["--json", "status"]).json is True
    assert parser.parse_args(["status", "--json"]).json is True
    assert not getattr(parser.parse_args(["status"]), "json", False)


def test_redrive_starts_an_sqs_message_move_task_from_the_dlq_to_the_sync_queue():
    sqs = boto3.client("sqs", region_name="eu-north-1", aws_access_key_id="x", aws_secret_access_key="x")
    url = "https://sqs.eu-north-1.amazonaws.com/123456789012/sync"
    dlq_url = "https://sqs.eu-north-1.amazonaws.com/123456789012/sync-dlq"
    sync_arn, dlq_arn = "arn:aws:sqs:eu-north-1:123456789012:sync", "arn:aws:sqs:eu-north-1:123456789012:sync-dlq"
    queues = SyncQueues(RuntimeSettings.model_validate({
        "state_table": "t", "sync_queue_url": url,
        "connections": [{"id": "c", "visma": {"secret_id": "v"}, "marketo": {"secret_id": "m",
                                                                           "munchkin_id": "123-ABC-456"}}]}), sqs=sqs)
    with Stubber(sqs) as stub:
        stub.add_response("get_queue_attributes", {"Attributes": {"RedrivePolicy": (
            f'{{"deadLetterTargetArn": "{dlq_arn}", "maxReceiveCount": 5}}')}},
            {"QueueUrl": url, "AttributeNames": ["RedrivePolicy"]})
        stub.add_response("get_queue_url", {"QueueUrl": dlq_url}, {"QueueName": "sync-dlq"})
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": dlq_arn}},
                          {"QueueUrl": dlq_url, "AttributeNames": ["QueueArn"]})
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": sync_arn}},
                          {"QueueUrl": url, "AttributeNames": ["QueueArn"]})
        stub.add_response("start_message_move_task", {"TaskHandle": "h"},
                          {"SourceArn": dlq_arn, "DestinationArn": sync_arn, "MaxNumberOfMessagesPerSecond": 5})
        stub.add_response("get_queue_attributes", {"Attributes": {"QueueArn": dlq_arn}},
                          {"QueueUrl": dlq_url, "AttributeNames": ["QueueArn"]})
        stub.add_response("list_message_move_tasks", {"Results": [{
            "Status": "RUNNING", "ApproximateNumberOfMessagesMoved": 3, "ApproximateNumberOfMessagesToMove": 40,
            "StartedTimestamp": 1_700_000_000_000, "SourceArn": dlq_arn}]},
            {"SourceArn": dlq_arn, "MaxResults": 10})
        task = redrive_dead_letters(queues, rate=5)
        stub.assert_no_pending_responses()
    assert (task.status, task.moved, task.to_move, task.method) == ("RUNNING", 3, 40, NATIVE)
    assert task.started == "2023-11-14T22:13:20+00:00"


def test_memory_runs_newest_first_and_limited():
    runs = memory_state().runs
    for minute in (1, 3, 2):
        runs.record(RunRecord(connection="c", started=f"2024-01-01T00:0{minute}:00.000000Z",
                              finished=f"2024-01-01T00:0{minute}:30.000000Z", records_read=minute))
    runs.record(RunRecord(connection="other", started="2024-01-01T00:09:00.000000Z",
                          finished="2024-01-01T00:09:01.000000Z"))
    recent = runs.recent("c", 2)
    assert [r.records_read for r in recent] == [3, 2] and recent[0].seconds == 30.0
