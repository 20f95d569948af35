"""template.yaml beyond its shape: failures that must not pass silently, deploy safety, the parameter
rules CloudFormation checks before a change, timeouts against the Marketo client, and the layer's lock."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from importlib import metadata
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from template_support import ROOT, props, transformed

from localrun.sam_template import parameter_values
from ml_connector.marketo.client import READ_TIMEOUT, WRITE_TIMEOUT

LAYER = ROOT / "layers" / "common"
STACK = {"Ref": "AWS::StackName"}





def _alarms(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::CloudWatch::Alarm"}


# -- CloudFormation Rules -----------------------------------------------------------------------

def _evaluate(expr: Any, params: dict[str, str]) -> Any:
    """The rule functions the template uses, as CloudFormation evaluates them (parameter values are strings)."""
    if isinstance(expr, list):
        return [_evaluate(e, params) for e in expr]
    if not isinstance(expr, dict):
        return expr
    (fn, arg), = expr.items()
    if fn == "Ref":
        return params[arg]
    if fn == "Fn::Equals":
        left, right = _evaluate(arg, params)
        return str(left) == str(right)
    if fn == "Fn::Contains":
        values, value = _evaluate(arg, params)
        return str(value) in [str(v) for v in values]
    if fn == "Fn::Not":
        return not _evaluate(arg[0], params)
    if fn == "Fn::And":
        return all(_evaluate(a, params) for a in arg)
    if fn == "Fn::Or":
        return any(_evaluate(a, params) for a in arg)
    raise AssertionError(f"rule function {fn} is not understood by this test")


def _rule_failures(sam: dict[str, Any], overrides: dict[str, str]) -> list[str]:
    params = parameter_values(sam, {"MarketoMunchkinId": "123-ABC-456", **overrides})
    failed = []
    for name, rule in sam["Rules"].items():
        if "RuleCondition" in rule and not _evaluate(rule["RuleCondition"], params):
            continue
        failed += [f"{name}: {a['AssertDescription']}" for a in rule["Assertions"]
                   if not _evaluate(a["Assert"], params)]
    return failed


@pytest.mark.parametrize(("batch_size", "window", "accepted"), [
    ("20", "0", False),
    ("11", "0", False),
    ("10", "0", True),
    ("1", "0", True),
    ("20", "1", True),
    ("20", "20", True),
    ("50", "300", True),
])
def test_rules_refuse_no_batching_window_for_batches_over_ten(sam: dict[str, Any], batch_size: str, window: str,
                                                              accepted: bool) -> None:
    failures = _rule_failures(sam, {"WriterBatchSize": batch_size, "WriterBatchingWindowSeconds": window})
    assert (failures == []) is accepted, failures


def test_every_batch_size_the_parameter_allows_is_judged_right(sam: dict[str, Any]) -> None:
    # Lambda's limit: a window of 0 is valid only up to 10 messages a batch.
    spec = sam["Parameters"]["WriterBatchSize"]
    for size in range(spec["MinValue"], spec["MaxValue"] + 1):
        assert (_rule_failures(sam, {"WriterBatchSize": str(size), "WriterBatchingWindowSeconds": "0"}) == []) \
            is (size <= 10), size


def _overrides(text: str) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in shlex.split(text))


def test_samconfig_environments_pass_the_rules(sam: dict[str, Any]) -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    for env in ("default", "localstack"):
        overrides = _overrides(config[env]["deploy"]["parameters"]["parameter_overrides"])
        overrides.setdefault("MarketoMunchkinId", "123-ABC-456")
        assert _rule_failures(sam, overrides) == [], env


def test_rules_survive_the_sam_transform(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    assert cfn["Rules"] == sam["Rules"]


# -- timeouts -----------------------------------------------------------------------------------

def test_writer_outlasts_the_marketo_clients_worst_case(sam: dict[str, Any]) -> None:
    # One chunk can need a token refresh (a read) and then the sync call at its full write timeout;
    # a shorter function timeout cuts the write short and leaves its outcome unknown.
    timeout = props(sam, "WriterFunction")["Timeout"]
    assert timeout > WRITE_TIMEOUT + READ_TIMEOUT
    assert props(sam, "SyncQueue")["VisibilityTimeout"] >= 6 * timeout
    assert props(sam, "SyncQueue")["VisibilityTimeout"] <= 43200  # SQS maximum


# -- failures that used to pass silently --------------------------------------------------------

def test_function_errors_and_throttles_alarm(cfn: dict[str, Any]) -> None:
    watched = {(a["MetricName"], a["Dimensions"][0]["Value"]["Ref"])
               for a in _alarms(cfn).values() if a["Namespace"] == "AWS/Lambda"}
    assert watched == {(m, f) for m in ("Errors", "Throttles") for f in ("PollerFunction", "WriterFunction")}
    for alarm in _alarms(cfn).values():
        if alarm["Namespace"] == "AWS/Lambda":
            assert alarm["Dimensions"][0]["Name"] == "FunctionName"
            assert (alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == \
                ("Sum", 0, "GreaterThanThreshold")


def _seconds(rate: str) -> int:
    number, unit = re.fullmatch(r"rate\((\d+) (minutes?|hours?|days?)\)", rate).groups()  # type: ignore[union-attr]
    return int(number) * {"m": 60, "h": 3600, "d": 86400}[unit[0]]


def test_queue_age_alarm_threshold_is_a_parameter_above_the_schedule(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    (alarm,) = [a for a in _alarms(cfn).values() if a["MetricName"] == "ApproximateAgeOfOldestMessage"]
    assert alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": ["SyncQueue", "QueueName"]}}]
    assert alarm["Threshold"] == {"Ref": "QueueAgeAlarmSeconds"} and alarm["Statistic"] == "Maximum"
    default = sam["Parameters"]["QueueAgeAlarmSeconds"]["Default"]
    interval = _seconds(sam["Parameters"]["ScheduleRate"]["Default"])
    # Above a schedule interval plus the writer's batching window: a normal cycle never trips it.
    assert default >= 2 * interval + sam["Parameters"]["WriterBatchingWindowSeconds"]["MaxValue"]


def test_failed_dispatches_go_to_a_watched_queue(cfn: dict[str, Any]) -> None:
    config = props(cfn, "DispatcherFunctionEventInvokeConfig")
    assert config["FunctionName"] == {"Ref": "DispatcherFunction"}
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (1, 900)
    destination = config["DestinationConfig"]["OnFailure"]["Destination"]
    assert destination == {"Fn::GetAtt": ["PollFailureQueue", "Arn"]}
    assert props(cfn, "PollFailureQueue")["KmsMasterKeyId"] == {"Ref": "EncryptionKey"}
    # Lambda sends to the destination with the dispatcher's role.
    statements = [s for p in props(cfn, "DispatcherFunctionRole")["Policies"] for s in p["PolicyDocument"]["Statement"]]
    assert any(s["Action"] == "sqs:SendMessage" and s["Resource"] == destination for s in statements)
    (alarm,) = [a for a in _alarms(cfn).values()
                if a["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["PollFailureQueue", "QueueName"]}]
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible" and alarm["Threshold"] == 0


def test_every_alarm_notifies_the_topic_when_there_is_one(cfn: dict[str, Any]) -> None:
    for name, alarm in _alarms(cfn).items():
        assert alarm["AlarmActions"] == {"Fn::If": ["HasAlarmEmail", [{"Ref": "AlarmTopic"}],
                                                    {"Ref": "AWS::NoValue"}]}, name


# -- metrics and alarms per stack ---------------------------------------------------------------

def test_service_dimension_is_the_stack_name(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    assert sam["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == STACK
    own = [a for a in _alarms(cfn).values() if a["Namespace"] == "MlConnector"]
    assert {a["MetricName"] for a in own} == {"RecordsQuarantined", "SyncLagSeconds", "MarketoQuotaExhausted",
                                              "LateWriteSeconds", "PollsFailed"}
    for alarm in own:
        assert alarm["Dimensions"] == [{"Name": "service", "Value": STACK}]
    body = props(cfn, "Dashboard")["DashboardBody"]["Fn::Sub"][0]
    assert "ml-connector" not in body
    services = re.findall(r'"service", "([^"]*)"', body)
    assert services and set(services) == {"${AWS::StackName}"}


def test_dashboard_body_is_json_once_substituted(cfn: dict[str, Any]) -> None:
    text, variables = props(cfn, "Dashboard")["DashboardBody"]["Fn::Sub"]
    names = set(re.findall(r"\$\{([^}]+)\}", text))
    assert names - set(variables) <= {"AWS::Region", "AWS::StackName", "SyncLagAlarmSeconds",
                                      "QueueAgeAlarmSeconds", "PollerFunction", "WriterFunction",
                                      "DispatcherFunction"}
    widgets = json.loads(re.sub(r"\$\{[^}]+\}", "1", text))["widgets"]
    assert any(w["properties"]["title"] == "Function errors and throttles" for w in widgets)


# -- safe first deploy --------------------------------------------------------------------------

def test_schedule_is_off_until_asked_for(sam: dict[str, Any], cfn: dict[str, Any]) -> None:
    param = sam["Parameters"]["ScheduleEnabled"]
    assert (param["Default"], param["AllowedValues"]) == ("false", ["true", "false"])
    assert sam["Conditions"]["ScheduleOn"] == {"Fn::Equals": [{"Ref": "ScheduleEnabled"}, "true"]}
    (rule,) = [r["Properties"] for r in cfn["Resources"].values() if r["Type"] == "AWS::Events::Rule"]
    assert rule["State"] == {"Fn::If": ["ScheduleOn", "ENABLED", "DISABLED"]}


def _mentions_anything_variable(value: Any) -> bool:
    if isinstance(value, dict):
        return any(k in ("Ref", "Fn::Sub", "Fn::GetAtt", "Fn::If", "Fn::Join", "Fn::ImportValue") or
                   _mentions_anything_variable(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_mentions_anything_variable(v) for v in value)
    return isinstance(value, str) and "{{resolve:" in value


def test_no_deploy_can_put_a_secret_value_back(sam: dict[str, Any]) -> None:
    secrets = {k: r for k, r in sam["Resources"].items() if r["Type"] == "AWS::SecretsManager::Secret"}
    assert set(secrets) == {"VismaCredentialsSecret", "MarketoCredentialsSecret"}
    for name, resource in secrets.items():
        value = resource["Properties"].get("SecretString", resource["Properties"].get("GenerateSecretString"))
        # A literal never changes between deploys, so CloudFormation never re-applies it.
        assert value is not None and not _mentions_anything_variable(value), name
        assert "CHANGE_ME" in json.dumps(value), name
        # A renamed (replaced) secret is kept; deleting the stack deletes it.
        assert (resource["UpdateReplacePolicy"], resource["DeletionPolicy"]) == ("Retain", "Delete"), name


# -- encryption, boundary, tags -----------------------------------------------------------------

def test_log_groups_are_encrypted_with_the_cmk_and_only_this_stacks(sam: dict[str, Any]) -> None:
    for group in ("DispatcherLogGroup", "PollerLogGroup", "WriterLogGroup"):
        assert props(sam, group)["KmsKeyId"] == {"Fn::GetAtt": ["EncryptionKey", "Arn"]}
        assert props(sam, group)["LogGroupName"]["Fn::Sub"].startswith("/aws/lambda/${AWS::StackName}/")
    statements = {s["Sid"]: s for s in props(sam, "EncryptionKey")["KeyPolicy"]["Statement"]}
    logs = statements["AllowCloudWatchLogsForThisStack"]
    assert logs["Principal"] == {"Service": {"Fn::Sub": "logs.${AWS::Region}.amazonaws.com"}}
    context = logs["Condition"]["ArnLike"]["kms:EncryptionContext:aws:logs:arn"]["Fn::Sub"]
    assert context.endswith(":${AWS::AccountId}:log-group:/aws/lambda/${AWS::StackName}/*")
    alarms = statements["AllowCloudWatchAlarmsToPublish"]
    assert alarms["Condition"] == {"StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}}


def _roles(cfn: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: r["Properties"] for k, r in cfn["Resources"].items() if r["Type"] == "AWS::IAM::Role"}


def test_permissions_boundary_reaches_every_role(sam: dict[str, Any]) -> None:
    boundary = "arn:aws:iam::123456789012:policy/team-boundary"
    assert sam["Parameters"]["PermissionsBoundary"]["Default"] == ""
    assert re.fullmatch(sam["Parameters"]["PermissionsBoundary"]["AllowedPattern"], boundary)
    roles = _roles(transformed(sam, PermissionsBoundary=boundary))
    assert len(roles) == 3
    condition = {"Fn::If": ["HasPermissionsBoundary", {"Ref": "PermissionsBoundary"}, {"Ref": "AWS::NoValue"}]}
    for name, role in roles.items():
        assert role["PermissionsBoundary"] in (condition, boundary), name


def test_stack_tags_are_set_for_every_resource() -> None:
    deploy = tomllib.loads((ROOT / "samconfig.toml").read_text())["default"]["deploy"]["parameters"]
    assert _overrides(deploy["tags"])["application"] == "ml-connector"


def test_checkov_skips_give_their_reason(sam: dict[str, Any]) -> None:
    skips = [(name, skip) for name, r in sam["Resources"].items()
             for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", [])]
    assert skips, "the accepted findings are recorded as skips in template.yaml"
    for name, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", skip["id"]), name
        assert len(skip.get("comment", "")) > 40, f"{name} {skip['id']}: say why it is accepted"


# -- the layer's lock ---------------------------------------------------------------------------

# What the python3.13 Lambda runtime ships (the AWS SDK and its dependencies).
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
LAMBDA_ENV = {"python_version": "3.13", "python_full_version": "3.13.0", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "aarch64", "os_name": "posix",
              "implementation_name": "cpython", "platform_python_implementation": "CPython"}


def _locked() -> dict[str, tuple[str, list[str]]]:
    text = (LAYER / "requirements.txt").read_text()
    found = {}
    for block in re.split(r"\n(?=\S)", text):
        line = block.strip()
        if not line or line.startswith("#"):
            continue
        requirement = Requirement(line.split("\\")[0].strip())
        (spec,) = requirement.specifier
        hashes = re.findall(r"--hash=sha256:\w+", block)
        found[canonicalize_name(requirement.name)] = (spec.operator + spec.version, hashes)
    return found


def test_layer_requirements_are_pinned_and_hashed_without_the_sdk() -> None:
    locked = _locked()
    assert {"aws-lambda-powertools", "aws-xray-sdk", "requests", "pydantic", "pydantic-core"} <= set(locked)
    for name, (pin, hashes) in locked.items():
        assert pin.startswith("==") and hashes, name
    assert not {"boto3", "botocore", "s3transfer"} & set(locked)


def test_layer_lock_is_complete(sam: dict[str, Any]) -> None:
    # The layer installs with --no-deps, so every dependency of a locked package must be locked too,
    # or come with the runtime. Read the dependency lists from the installed distributions.
    locked = _locked()
    requested = {"aws-lambda-powertools": {"tracer"}}
    for name in locked:
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # not installed in this venv; its own lock entry is checked above
        for text in requires:
            requirement = Requirement(text)
            extras = requested.get(name, set()) | {""}
            if requirement.marker and not any(
                    Marker(str(requirement.marker)).evaluate({**LAMBDA_ENV, "extra": e}) for e in extras):
                continue
            dependency = canonicalize_name(requirement.name)
            assert dependency in locked or dependency in RUNTIME_PROVIDED, f"{name} needs {dependency}"


def test_layer_build_installs_exactly_the_lock_for_the_lambda_target() -> None:
    makefile = (LAYER / "Makefile").read_text()
    (recipe,) = re.findall(r"^build-CommonLayer:\n((?:\t.*\n)+)", makefile, flags=re.M)
    for flag in ("--require-hashes", "--no-deps", "--only-binary=:all:", "--platform manylinux2014_aarch64",
                 "--python-version 3.13", "-r requirements.txt", '--target "$(ARTIFACTS_DIR)/python"'):
        assert flag in recipe, flag
    requested = {canonicalize_name(Requirement(line).name)
                 for line in (LAYER / "requirements.in").read_text().splitlines()
                 if line.strip() and not line.startswith("#")}
    assert requested <= set(_locked()) and not requested & {"boto3", "botocore"}


def test_gitignore_covers_local_state() -> None:
    ignored = (ROOT / ".gitignore").read_text().split()
    assert {".local/", ".tools/", ".venv/", ".aws-sam/"} <= set(ignored)


def test_a_late_write_alarms_and_shows_on_the_dashboard(cfn: dict[str, Any]) -> None:
    alarm = props(cfn, "LateWriteAlarm")
    assert (alarm["MetricName"], alarm["Statistic"], alarm["Threshold"], alarm["ComparisonOperator"]) == (
        "LateWriteSeconds", "Maximum", 0, "GreaterThanThreshold")
    body = props(cfn, "Dashboard")["DashboardBody"]["Fn::Sub"][0]
    assert '"LateWriteSeconds"' in body and '"WriteRacesRepaired"' in body
