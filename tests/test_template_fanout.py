"""template.yaml's fan-out: the schedule drives a dispatcher, which queues poll work (KMS, its own DLQ)
that the poller drains one connection at a time with bounded concurrency, under a lease per connection."""

from __future__ import annotations

import json
import re
from typing import Any

from template_support import CMK, props


def _statements(cfn: dict[str, Any], role: str) -> list[dict[str, Any]]:
    return [s for p in props(cfn, role)["Policies"] for s in p["PolicyDocument"]["Statement"]]


def _granted(cfn: dict[str, Any], role: str) -> dict[str, list[Any]]:
    """action -> the resources it is granted on."""
    granted: dict[str, list[Any]] = {}
    for statement in _statements(cfn, role):
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        for action in actions:
            granted.setdefault(action, []).append(statement["Resource"])
    return granted


def arn(logical_id: str) -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def test_the_schedule_triggers_the_dispatcher_which_queues_poll_work(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    dispatcher = props(sam, "DispatcherFunction")
    schedule = dispatcher["Events"]["Schedule"]["Properties"]
    assert schedule["Schedule"] == {"Ref": "ScheduleRate"}
    env = sam["Globals"]["Function"]["Environment"]["Variables"]
    assert (env["POLL_WORK_QUEUE_URL"], env["SCHEDULE_RATE"]) == ({"Ref": "PollWorkQueue"}, {"Ref": "ScheduleRate"})
    (rule,) = [r["Properties"] for r in cfn["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert rule["Targets"][0]["Arn"] == arn("DispatcherFunction")
    # Its asynchronous failures (after one retry) are kept, and alarmed on.
    destination = props(cfn, "DispatcherFunctionEventInvokeConfig")["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == arn("PollFailureQueue")
    assert dispatcher["Timeout"] <= 60  # no Visma calls: it only reads state and sends messages


def test_poll_work_queue_is_encrypted_and_has_its_own_dead_letter_queue(sam: dict[str, Any]) -> None:
    queue, dlq = props(sam, "PollWorkQueue"), props(sam, "PollWorkDeadLetterQueue")
    assert queue["KmsMasterKeyId"] == dlq["KmsMasterKeyId"] == CMK
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": arn("PollWorkDeadLetterQueue"),
                                      "maxReceiveCount": {"Ref": "MaxReceiveCount"}}
    assert dlq["MessageRetentionPeriod"] > queue["MessageRetentionPeriod"]
    assert props(sam, "SyncQueue")["RedrivePolicy"]["deadLetterTargetArn"] != arn("PollWorkDeadLetterQueue")
    alarmed = {json.dumps(r["Properties"]["Dimensions"]) for r in sam["Resources"].values()
               if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert json.dumps([{"Name": "QueueName", "Value": {"Fn::GetAtt": ["PollWorkDeadLetterQueue", "QueueName"]}}]) \
        in alarmed


def test_poller_drains_poll_work_one_message_at_a_time_with_bounded_concurrency(sam: dict[str, Any],
                                                                               cfn: dict[str, Any]) -> None:
    param = sam["Parameters"]["PollerMaximumConcurrency"]
    assert (param["Default"], param["MinValue"], param["MaxValue"]) == (5, 2, 1000)  # AWS allows 2..1000
    mapping = props(cfn, "PollerFunctionPollWork")
    assert mapping["FunctionName"] == {"Ref": "PollerFunction"}
    assert mapping["EventSourceArn"] == arn("PollWorkQueue")
    assert mapping["BatchSize"] == 1
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "PollerMaximumConcurrency"}}
    assert "ReservedConcurrentExecutions" not in props(cfn, "PollerFunction")


def test_lease_outlasts_the_poller_and_a_put_back_message_outlasts_the_lease(sam: dict[str, Any]) -> None:
    poller = props(sam, "PollerFunction")
    lease = int(sam["Globals"]["Function"]["Environment"]["Variables"]["POLL_LEASE_SECONDS"])
    # An invocation that dies leaves a lease that expires soon after the function would have been stopped ...
    assert poller["Timeout"] < lease <= poller["Timeout"] + 60
    # ... and a message put back because its connection was busy comes back when that lease is over.
    assert props(sam, "PollWorkQueue")["VisibilityTimeout"] > lease


def test_dispatcher_can_only_send_poll_work(cfn: dict[str, Any]) -> None:
    granted = _granted(cfn, "DispatcherFunctionRole")
    # The poll-work queue, and the failure queue Lambda sends its failed invocations to with this role.
    assert sorted(map(json.dumps, granted["sqs:SendMessage"])) == sorted(
        map(json.dumps, [arn("PollWorkQueue"), arn("PollFailureQueue")]))
    assert not [a for a in granted if a.startswith("sqs:") and a != "sqs:SendMessage"]
    # It reads when each connection last polled; it writes no state and reads no credentials.
    assert {a for a in granted if a.startswith("dynamodb:")} == {"dynamodb:GetItem", "dynamodb:BatchGetItem"}
    assert not [a for a in granted if a.startswith("secretsmanager:")]


def test_poller_consumes_poll_work_and_sends_only_to_the_sync_queue_and_its_continuations(cfn: dict[str, Any]) -> None:
    granted = _granted(cfn, "PollerFunctionRole")
    # Records to the sync queue; a window that needs another invocation, its continuation to the poll-work queue.
    assert sorted(map(str, granted["sqs:SendMessage"])) == sorted(map(str, [arn("SyncQueue"), arn("PollWorkQueue")]))
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"):
        assert granted[action] == [arn("PollWorkQueue")], action


def test_dashboard_shows_lag_and_failures_per_connection(cfn: dict[str, Any]) -> None:
    text, _ = props(cfn, "Dashboard")["DashboardBody"]["Fn::Sub"]
    widgets = {w["properties"]["title"]: w["properties"]
               for w in json.loads(re.sub(r"\$\{[^}]+\}", "1", text))["widgets"]}
    searches = {}
    for title in ("Sync lag by connection (s)", "Polls failed by connection"):
        ((query,),) = widgets[title]["metrics"]
        searches[title] = query["expression"]
    raw = dict(re.findall(r'"title": "([^"]+ by connection[^"]*)".*?"expression":\s*"(SEARCH.*?)"}', text, re.S))
    lag = raw["Sync lag by connection (s)"]
    assert lag.startswith("SEARCH('{MlConnector,connection,entity,service} MetricName=\\\"SyncLagSeconds\\\"")
    assert 'service=\\"${AWS::StackName}\\"' in lag  # this stack's connections only
    assert "{MlConnector,connection,service} MetricName=" in raw["Polls failed by connection"]
    assert all(s.startswith("SEARCH(") for s in searches.values())


def test_failed_polls_alarm_per_stack(cfn: dict[str, Any]) -> None:
    alarm = props(cfn, "PollsFailedAlarm")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("MlConnector", "PollsFailed")
    assert alarm["Dimensions"] == [{"Name": "service", "Value": {"Ref": "AWS::StackName"}}]
    assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == ("Sum", 0, "GreaterThanThreshold")


def test_dashboard_shows_reconciles_and_continued_windows(cfn: dict[str, Any]) -> None:
    """Every metric the reconcile and the resumable windows emit has a line on the dashboard."""
    text, _ = props(cfn, "Dashboard")["DashboardBody"]["Fn::Sub"]
    shown = {m[1] for w in json.loads(re.sub(r"\$\{[^}]+\}", "1", text))["widgets"]
             for m in w["properties"].get("metrics", []) if len(m) > 1 and isinstance(m[1], str)}
    assert {"ReconcileCompleted", "RecordsDeletedInVisma", "RecordsDrifted", "WindowContinued"} <= shown
