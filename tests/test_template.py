"""template.yaml: lint-clean, the shape the design asks for, least privilege and encryption with the CMK."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from template_support import CMK, ROOT, TEMPLATE_PATH, props

from ml_connector.sync.mapping import load_mapping


def test_cfn_lint_is_clean() -> None:
    lint = Path(sys.executable).parent / "cfn-lint"
    run = subprocess.run([str(lint), str(TEMPLATE_PATH)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr


def test_globals(sam: dict[str, Any]) -> None:
    function = sam["Globals"]["Function"]
    assert function["Runtime"] == "python3.13" and function["Architectures"] == ["arm64"]
    assert function["Tracing"] == "Active" and function["Layers"] == [{"Ref": "CommonLayer"}]
    assert function["PermissionsBoundary"] == {"Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundary"},
                                                          {"Ref": "AWS::NoValue"}]}
    assert function["Environment"]["Variables"] == {
        "POWERTOOLS_SERVICE_NAME": {"Ref": "AWS::StackName"},
        "POWERTOOLS_METRICS_NAMESPACE": "MlConnector",
        "LOG_LEVEL": {"Ref": "LogLevel"},
        "STATE_TABLE": {"Ref": "StateTable"},
        "IDEMPOTENCY_TABLE": {"Ref": "IdempotencyTable"},
        "SYNC_QUEUE_URL": {"Ref": "SyncQueue"},
        "VISMA_SECRET_ID": {"Ref": "VismaCredentialsSecret"},
        "MARKETO_SECRET_ID": {"Ref": "MarketoCredentialsSecret"},
        "VISMA_BASE_URL": {"Ref": "VismaBaseUrl"},
        "VISMA_TOKEN_URL": {"Ref": "VismaTokenUrl"},
        "MARKETO_MUNCHKIN_ID": {"Ref": "MarketoMunchkinId"},
        "CONNECTION_ID": {"Ref": "ConnectionId"},
        "MARKETO_CALLS_PER_20S": {"Ref": "MarketoCallsPer20Seconds"},
        "MARKETO_MAX_CONCURRENCY": {"Ref": "MarketoMaxConcurrentCalls"},
        "CONNECTIONS_CONFIG": {"Fn::If": ["HasConnectionsParameter",
                                          {"Fn::Sub": "ssm:${ConnectionsConfigParameter}"}, ""]},
        "MAPPING_FILE": {"Ref": "MappingFile"},
        "RECONCILE_INTERVAL_HOURS": {"Ref": "ReconcileIntervalHours"},
        "DRIFT_REPAIR": {"Ref": "DriftRepair"},
        "POLL_WORK_QUEUE_URL": {"Ref": "PollWorkQueue"},
        "SCHEDULE_RATE": {"Ref": "ScheduleRate"},
        "POLL_LEASE_SECONDS": "330",
    }


def test_parameters_and_munchkin_pattern(sam: dict[str, Any]) -> None:
    params = sam["Parameters"]
    assert params["VismaBaseUrl"]["Default"] == "https://api.finance.visma.net"
    assert params["VismaTokenUrl"]["Default"] == "https://connect.visma.com/connect/token"
    assert params["ConnectionId"]["Default"] == "default"
    assert params["ScheduleRate"]["Default"] == "rate(15 minutes)"
    assert "Default" not in params["MarketoMunchkinId"]
    pattern = re.compile(params["MarketoMunchkinId"]["AllowedPattern"])
    assert pattern.fullmatch("123-ABC-456")
    assert not any(pattern.fullmatch(v) for v in ("123-abc-456", "12-ABC-456", "123ABC456", ""))
    assert (params["WriterBatchSize"]["Default"], params["WriterBatchingWindowSeconds"]["Default"]) == (20, 20)
    assert "WriterMaximumConcurrency" not in params  # writers follow the Marketo budget, not a second setting
    assert params["MaxReceiveCount"]["Default"] == 5


def test_layer(sam: dict[str, Any]) -> None:
    layer = sam["Resources"]["CommonLayer"]
    assert layer["Type"] == "AWS::Serverless::LayerVersion"
    assert layer["Properties"]["ContentUri"] == "layers/common"
    assert layer["Metadata"] == {"BuildMethod": "makefile", "BuildArchitecture": "arm64"}
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]


def test_poller(sam: dict[str, Any]) -> None:
    poller = props(sam, "PollerFunction")
    assert (poller["CodeUri"], poller["Handler"]) == ("functions/poller", "app.lambda_handler")
    assert (poller["Timeout"], poller["MemorySize"]) == (300, 512)
    # The lease per connection replaces the concurrency limit of 1; the schedule drives the dispatcher.
    assert "ReservedConcurrentExecutions" not in poller
    assert set(poller["Events"]) == {"PollWork"}
    dispatcher = props(sam, "DispatcherFunction")
    assert (dispatcher["CodeUri"], dispatcher["Handler"]) == ("functions/dispatcher", "app.lambda_handler")
    schedule = dispatcher["Events"]["Schedule"]
    assert schedule["Type"] == "Schedule" and schedule["Properties"]["Schedule"] == {"Ref": "ScheduleRate"}
    assert schedule["Properties"]["State"] == {"Fn::If": ["ScheduleOn", "ENABLED", "DISABLED"]}
    assert "Enabled" not in schedule["Properties"]


def test_writer_and_its_event_source(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    writer = props(sam, "WriterFunction")
    assert (writer["CodeUri"], writer["Handler"]) == ("functions/writer", "app.lambda_handler")
    assert writer["MemorySize"] == 512
    mapping = props(cfn, "WriterFunctionSyncQueue")
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": ["SyncQueue", "Arn"]}
    assert mapping["BatchSize"] == {"Ref": "WriterBatchSize"}
    assert mapping["MaximumBatchingWindowInSeconds"] == {"Ref": "WriterBatchingWindowSeconds"}
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    # two writers per concurrent Marketo call, for every value the parameter allows (the event source's minimum is 2)
    index, table = mapping["ScalingConfig"]["MaximumConcurrency"]["Fn::Select"]
    assert index == {"Ref": "MarketoMaxConcurrentCalls"}
    calls = cfn["Parameters"]["MarketoMaxConcurrentCalls"]
    assert {c: table[c] for c in range(calls["MinValue"], calls["MaxValue"] + 1)} == {
        c: str(2 * c) for c in range(calls["MinValue"], calls["MaxValue"] + 1)}


def test_queues(sam: dict[str, Any]) -> None:
    queue, dlq = props(sam, "SyncQueue"), props(sam, "SyncDeadLetterQueue")
    # Six times the writer timeout, so an in-flight batch never becomes visible again mid-run.
    assert queue["VisibilityTimeout"] == 6 * props(sam, "WriterFunction")["Timeout"]
    assert queue["RedrivePolicy"] == {"deadLetterTargetArn": {"Fn::GetAtt": ["SyncDeadLetterQueue", "Arn"]},
                                      "maxReceiveCount": {"Ref": "MaxReceiveCount"}}
    assert dlq["MessageRetentionPeriod"] == 14 * 24 * 3600


def test_tables(sam: dict[str, Any]) -> None:
    state, idem = props(sam, "StateTable"), props(sam, "IdempotencyTable")
    assert state["BillingMode"] == idem["BillingMode"] == "PAY_PER_REQUEST"
    assert state["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                  {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert state["TimeToLiveSpecification"] == {"AttributeName": "expiresAt", "Enabled": True}
    assert idem["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert idem["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}
    for table in (state, idem):
        assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}


def test_key_and_secrets(sam: dict[str, Any]) -> None:
    key = props(sam, "EncryptionKey")
    assert key["EnableKeyRotation"] is True
    root = key["KeyPolicy"]["Statement"][0]
    assert root["Principal"] == {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    assert props(sam, "EncryptionKeyAlias")["TargetKeyId"] == CMK
    expected = {"VismaCredentialsSecret": ("visma", {"client_id", "client_secret", "tenant_id", "company_id"}),
                "MarketoCredentialsSecret": ("marketo", {"client_id", "client_secret"})}
    for logical_id, (suffix, keys) in expected.items():
        secret = props(sam, logical_id)
        assert secret["Name"] == {"Fn::Sub": f"${{AWS::StackName}}/${{ConnectionId}}/{suffix}"}
        assert set(json.loads(secret["SecretString"])) == keys


def test_outputs(sam: dict[str, Any]) -> None:
    values = {o["Value"].get("Ref") for o in sam["Outputs"].values()}
    assert {"SyncQueue", "SyncDeadLetterQueue", "StateTable", "IdempotencyTable", "VismaCredentialsSecret",
            "MarketoCredentialsSecret", "PollerFunction", "WriterFunction", "DispatcherFunction", "PollWorkQueue",
            "PollWorkDeadLetterQueue"} <= values


def test_everything_stored_is_encrypted_with_the_cmk(cfn: dict[str, Any]) -> None:
    for queue in ("SyncQueue", "SyncDeadLetterQueue", "PollWorkQueue", "PollWorkDeadLetterQueue", "PollFailureQueue"):
        assert props(cfn, queue)["KmsMasterKeyId"] == CMK
    for table in ("StateTable", "IdempotencyTable"):
        assert props(cfn, table)["SSESpecification"] == {"SSEEnabled": True, "SSEType": "KMS", "KMSMasterKeyId": CMK}
    for secret in ("VismaCredentialsSecret", "MarketoCredentialsSecret"):
        assert props(cfn, secret)["KmsKeyId"] == CMK


def _role_statements(cfn: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical_id, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            for policy in resource["Properties"].get("Policies", []):
                found += [(logical_id, s) for s in policy["PolicyDocument"]["Statement"]]
    return found


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


# Actions that have no resource-level permissions in IAM: "*" is the only possible resource.
NO_RESOURCE_LEVEL = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def test_roles_have_no_managed_policies(cfn: dict[str, Any]) -> None:
    roles = {k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert set(roles) == {"DispatcherFunctionRole", "PollerFunctionRole", "WriterFunctionRole"}
    for name, role in roles.items():
        assert not role.get("ManagedPolicyArns"), f"{name}: managed policies grant on '*'"
    assert props(cfn, "PollerFunction")["Role"] == {"Fn::GetAtt": ["PollerFunctionRole", "Arn"]}
    assert props(cfn, "WriterFunction")["Role"] == {"Fn::GetAtt": ["WriterFunctionRole", "Arn"]}
    assert props(cfn, "DispatcherFunction")["Role"] == {"Fn::GetAtt": ["DispatcherFunctionRole", "Arn"]}


def test_every_statement_names_this_stacks_resources(cfn: dict[str, Any]) -> None:
    statements = _role_statements(cfn)
    assert len(statements) >= 12
    for role, statement in statements:
        assert statement["Effect"] == "Allow"
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if "*" in resources:
            assert set(_actions(statement)) <= NO_RESOURCE_LEVEL, f"{role}: {_actions(statement)} on '*'"
            continue
        for resource in resources:
            (function, argument), = resource.items()
            if function == "Fn::Sub":
                # A name prefix owned by this stack: its own secrets and SSM parameters.
                assert argument.endswith((":secret:${AWS::StackName}/*", ":parameter/${AWS::StackName}/*")), role
                assert argument.startswith("arn:${AWS::Partition}:"), role
                continue
            target = argument if function == "Ref" else argument[0]
            assert function in ("Ref", "Fn::GetAtt") and target in cfn["Resources"], f"{role}: {resource}"


def test_each_function_gets_only_what_it_uses(cfn: dict[str, Any]) -> None:
    def granted(role: str) -> set[str]:
        return {a for r, s in _role_statements(cfn) if r == role for a in _actions(s)}

    poller, writer = granted("PollerFunctionRole"), granted("WriterFunctionRole")
    assert "sqs:SendMessage" in poller and "sqs:SendMessage" not in writer
    assert "sqs:ReceiveMessage" in writer and "sqs:ReceiveMessage" in poller  # sync queue; poll-work queue
    assert {"secretsmanager:GetSecretValue", "kms:Decrypt", "kms:GenerateDataKey"} <= poller & writer
    assert {"dynamodb:PutItem", "dynamodb:Query"} <= poller & writer
    assert not any(a.endswith(":*") for a in poller | writer)


def test_samconfig() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    default = config["default"]
    assert default["global"]["parameters"] == {"stack_name": "ml-connector", "region": "eu-north-1"}
    deploy = default["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert deploy["resolve_s3"] is True and deploy["confirm_changeset"] is True
    assert config["localstack"]["global"]["parameters"]["region"] == "us-east-1"
    assert "MarketoMunchkinId=" in config["localstack"]["deploy"]["parameters"]["parameter_overrides"]


def test_schedule_event_is_an_eventbridge_scheduled_event() -> None:
    event = json.loads((ROOT / "events" / "schedule.json").read_text())
    assert event["detail-type"] == "Scheduled Event" and event["source"] == "aws.events"
    assert event["detail"] == {} and event["version"] == "0"
    assert re.fullmatch(r"arn:aws:events:[a-z0-9-]+:\d{12}:rule/ml-connector-DispatcherFunctionSchedule-\w+",
                        event["resources"][0])


def test_mapping_file_parameter_takes_shipped_names_and_ssm_only(sam: dict[str, Any]) -> None:
    param = sam["Parameters"]["MappingFile"]
    pattern = re.compile(param["AllowedPattern"])
    assert param["Default"] == "" and pattern.fullmatch("")
    for shipped in ("with-contacts-as-leads.json", "suppliers-as-custom-object.json"):
        assert pattern.fullmatch(shipped)
        assert load_mapping(shipped).customer is not None  # the name resolves to the shipped file
    assert pattern.fullmatch("ssm:/ml-connector/mappings/main")
    assert not any(pattern.fullmatch(v) for v in ("../etc/passwd.json", "/tmp/x.json", "http://x/y.json"))
