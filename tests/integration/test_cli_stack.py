"""The CLI against a stack addressed as a deployed one (``--stack``): moto holds the stack built from
template.yaml, so the CLI finds it through CloudFormation and Lambda exactly as in AWS, and its functions'
environment points at the sandboxes (as a deployed stack's points at Visma and Marketo)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from cli.main import EXIT_OK, EXIT_PROBLEM, EXIT_USAGE, main
from cli.remote import invoke_poller
from ml_connector.queues import OperationError

pytestmark = pytest.mark.integration
STACK = "ml-connector"
COMMAND = str(Path(sys.executable).parent / "ml-connector")


@pytest.fixture(scope="module")
def env(local_stack):
    stack = local_stack(seed=3, customers=20, suppliers=5)
    assert stack.stack is not None
    lam = stack.aws.client("lambda")
    endpoints = {"VISMA_BASE_URL": stack.visma.url, "VISMA_TOKEN_URL": stack.visma.token_url,
                 "MARKETO_ENDPOINT_OVERRIDE": stack.marketo.url}
    for logical_id in ("PollerFunction", "WriterFunction"):
        name = stack.resource(logical_id)
        # moto's CloudFormation built the functions before the secrets existed (it leaves those refs empty):
        # put in the environment the template gives them, resolved against this stack, as AWS would.
        variables = {**stack.stack.function_environment(logical_id), **endpoints}
        lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
    return stack


@pytest.fixture
def aws(env, monkeypatch):
    """The operator's AWS configuration: here, moto's endpoint and its fake credentials."""
    for name, value in env.aws.env().items():
        monkeypatch.setenv(name, value)
    return env.aws


def run(capsys, *args):
    code = main([*args, "--json"])  # --json after the subcommand, as with aws and sam
    captured = capsys.readouterr()
    return code, (json.loads(captured.out) if captured.out.strip() else None), captured.err


def test_unknown_stack_is_one_line_and_exit_2(aws, capsys):
    code, data, err = run(capsys, "status", "--stack", "no-such-stack")
    assert code == EXIT_USAGE and data is None
    assert err.strip() == f"error: stack no-such-stack not found in region {aws.region}: check --stack and --region"


def test_ping_uses_the_stacks_secrets(env, aws, capsys):
    code, checks, err = run(capsys, "ping", "--stack", STACK)
    assert code == EXIT_OK, err
    assert [(c["connection"], c["name"], c["ok"]) for c in checks] == [
        ("default", "Visma Connect token", True), ("default", "Visma customer list (ipp-company-id)", True),
        ("default", "Marketo token", True), ("default", "Marketo company describe", True)]
    assert "25 customers in all" not in checks[1]["detail"] and "20 customers in all" in checks[1]["detail"]


def test_ping_with_a_wrong_deployed_secret_fails_that_api_only(env, aws, capsys):
    secrets = aws.client("secretsmanager")
    wrong = "wrong-deployed-secret-987"
    secret_id = env.resource("VismaCredentialsSecret")
    secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps({**env.visma.credentials,
                                                                          "client_secret": wrong}))
    try:
        code, checks, err = run(capsys, "ping", "--stack", STACK)
    finally:
        secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(env.visma.credentials))
    assert code == EXIT_PROBLEM
    assert [c["ok"] for c in checks] == [False, False, True, True]
    assert "Visma secret" in checks[0]["advice"]
    everything = json.dumps(checks) + err
    assert wrong not in everything and env.marketo.credentials["client_secret"] not in everything


def test_doctor_says_what_to_fix_and_passes_once_fixed(env, aws, capsys):
    code, report, _ = run(capsys, "doctor", "--stack", STACK)
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}
    # A fresh deploy leaves the schedule off (ScheduleEnabled=false): the one thing to fix here.
    assert code == EXIT_PROBLEM and set(failed) == {"Schedule"}, failed
    assert "ScheduleEnabled=true" in failed["Schedule"]["advice"]
    names = [c["name"] for c in report["checks"]]
    assert names[:4] == ["Visma Connect token", "Visma customer list (ipp-company-id)", "Marketo token",
                         "Marketo company describe"]
    assert "Marketo fields of mapping default" in names and "Alarms" in names

    events = aws.client("events")
    events.enable_rule(Name=env.resource("DispatcherFunctionSchedule"))  # as a deploy with ScheduleEnabled=true does
    code, report, _ = run(capsys, "doctor", "--stack", STACK)
    assert code == EXIT_OK and report["ok"], [c for c in report["checks"] if not c["ok"]]


def test_doctor_fails_on_dead_letters_alarms_and_a_wrong_marketo_secret(env, aws, capsys):
    aws.client("events").enable_rule(Name=env.resource("DispatcherFunctionSchedule"))
    sqs, cloudwatch, secrets = aws.client("sqs"), aws.client("cloudwatch"), aws.client("secretsmanager")
    dlq = env.resource("SyncDeadLetterQueue")
    sqs.send_message(QueueUrl=dlq, MessageBody="{}")
    cloudwatch.set_alarm_state(AlarmName=f"{STACK}-DeadLetterAlarm", StateValue="ALARM", StateReason="test")
    secret_id = env.resource("MarketoCredentialsSecret")
    secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps({**env.marketo.credentials,
                                                                          "client_secret": "not-the-secret"}))
    try:
        code, report, _ = run(capsys, "doctor", "--stack", STACK)
    finally:
        secrets.put_secret_value(SecretId=secret_id, SecretString=json.dumps(env.marketo.credentials))
        sqs.purge_queue(QueueUrl=dlq)
        cloudwatch.set_alarm_state(AlarmName=f"{STACK}-DeadLetterAlarm", StateValue="OK", StateReason="test")
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert code == EXIT_PROBLEM
    assert set(failed) == {"Marketo token", "Marketo company describe", "Marketo fields of mapping default",
                           "Dead-letter queue", "Alarms"}
    assert "redrive" in failed["Dead-letter queue"]["advice"]
    assert f"{STACK}-DeadLetterAlarm" in failed["Alarms"]["detail"]
    assert "ml-connector redrive" in failed["Alarms"]["advice"]  # the alarm's own description
    assert failed["Marketo fields of mapping default"]["detail"] == "not checked: Marketo was not reached"


def test_doctor_names_a_mapping_field_marketo_lacks(env, aws, tmp_path):
    from ml_connector.sync.mapping import DEFAULT_MAPPING_PATH

    aws.client("events").enable_rule(Name=env.resource("DispatcherFunctionSchedule"))
    mapping = json.loads(DEFAULT_MAPPING_PATH.read_text())
    mapping["customer"]["fields"]["noSuchField"] = {"source": "name"}
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    lam = aws.client("lambda")
    saved = {}
    for logical_id in ("PollerFunction", "WriterFunction"):  # a deploy with MappingFile set changes both
        name = env.resource(logical_id)
        saved[name] = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
        lam.update_function_configuration(FunctionName=name, Environment={
            "Variables": {**saved[name], "MAPPING_FILE": str(path)}})
    try:
        # A process of its own, as an operator runs it: this process's runtime cache is keyed on variables
        # that do not include MAPPING_FILE.
        done = subprocess.run([COMMAND, "doctor", "--stack", STACK, "--json"], capture_output=True, text=True,
                              timeout=120, env={**os.environ, **aws.env()})
        code, report = done.returncode, json.loads(done.stdout)
    finally:
        for name, variables in saved.items():
            lam.update_function_configuration(FunctionName=name, Environment={"Variables": variables})
    failed = {c["name"]: c for c in report["checks"] if not c["ok"]}
    assert code == EXIT_PROBLEM, [c for c in report["checks"] if c["name"].startswith("Marketo fields")]
    mapping_check = next(c for n, c in failed.items() if n.startswith("Marketo fields of mapping"))
    assert "noSuchField" in mapping_check["detail"] and "Field Management" in mapping_check["advice"]


def test_sync_once_with_a_stack_invokes_its_poller(env, aws, capsys):
    # moto accepts the invoke of the stack's function but cannot run it (no Docker): Lambda's FunctionError
    # comes back, which the CLI reports in one line. An unknown function would be ResourceNotFound instead.
    code, data, err = run(capsys, "sync", "--once", "--stack", STACK, "--connection", "default")
    assert code == EXIT_PROBLEM and data is None
    assert f"error: the poller {env.resource('PollerFunction')} failed" in err
    assert "Traceback" not in err


def test_invoke_poller_sends_the_connections_and_returns_the_pollers_report(env, aws):
    recorded = env.invoke_poller({"connections": ["default"]})  # the real handler's report, as Lambda returns it
    assert {e["entity"] for e in recorded["entities"]} == {"customer", "supplier"}
    lam = boto3.client("lambda", region_name=aws.region)
    name = env.resource("PollerFunction")
    body = json.dumps(recorded).encode()
    with Stubber(lam) as stub:
        stub.add_response("invoke", {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(body), len(body))},
                          {"FunctionName": name, "InvocationType": "RequestResponse",
                           "Payload": b'{"connections": ["default"]}'})
        failure = json.dumps({"errorType": "PollFailed", "errorMessage": "default/customer: Visma said 500"}).encode()
        stub.add_response("invoke", {"StatusCode": 200, "FunctionError": "Unhandled",
                                     "Payload": StreamingBody(io.BytesIO(failure), len(failure))},
                          {"FunctionName": name, "InvocationType": "RequestResponse", "Payload": b"{}"})
        assert invoke_poller(lam, name, ["default"]) == recorded
        with pytest.raises(OperationError, match="PollFailed: default/customer: Visma said 500"):
            invoke_poller(lam, name)


def test_runs_lists_each_cycle_with_counts_and_a_ttl(env, aws, capsys):
    before = datetime.now(UTC)
    for _ in range(2):
        env.cycle("cycle")  # the poller handler, in-process, as the schedule runs it
    code, runs, _ = run(capsys, "runs", "--stack", STACK, "--last", "2")
    assert code == EXIT_OK and len(runs) == 2
    newest, older = runs
    assert newest["started"] > older["started"] and all(r["connection"] == "default" for r in runs)
    assert all(r["finished"] >= r["started"] and r["seconds"] >= 0 and r["errors"] == 0 for r in runs)
    assert newest["messages_sent"] == 0  # nothing changed between the two cycles
    item = aws.client("dynamodb").query(
        TableName=env.resource("StateTable"), KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "RUN#default"}}, ScanIndexForward=False, Limit=1)["Items"][0]
    expires = datetime.fromtimestamp(int(item["expiresAt"]["N"]), UTC)
    assert before + timedelta(days=14) - timedelta(minutes=1) < expires < before + timedelta(days=14, minutes=5)
    assert len(json.dumps(item)) < 1024  # one small item per connection per cycle


def test_reconcile_with_a_stack_flags_it_in_the_stacks_state_and_invokes_its_poller(env, aws, capsys):
    """The request lands in the deployed state table; the deployed poller (which moto cannot run here) or, if it
    fails, the next scheduled poll serves it: the poller's next run reads those entities in full."""
    code, data, err = run(capsys, "reconcile", "--stack", STACK, "--connection", "default", "--entity", "supplier")
    assert code == EXIT_PROBLEM and f"error: the poller {env.resource('PollerFunction')} failed" in err
    assert env.state().reconciles.status("default", "supplier").requested()
    assert not env.state().reconciles.status("default", "customer").requested()
    served = env.invoke_poller({"connections": ["default"]})
    assert next(e for e in served["entities"] if e["entity"] == "supplier")["full_read"]
    assert not env.state().reconciles.status("default", "supplier").requested()
