"""deploy_template against moto's server: the stack is built from the template itself."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from localrun.aws import DeployedStack, LocalAws, LocalAwsError, deploy_template
from localrun.sam_template import TemplateError

REPO_TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
FIXTURE_TEMPLATE = Path(__file__).parent / "fixtures" / "template.yaml"
MUNCHKIN = "123-ABC-456"


@pytest.fixture
def stack(fresh_aws: LocalAws) -> DeployedStack:
    return deploy_template(fresh_aws, REPO_TEMPLATE, parameters={"MarketoMunchkinId": MUNCHKIN})


def test_server_listens_on_loopback_and_env_points_boto3_at_it(fresh_aws: LocalAws,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    aws = fresh_aws
    assert aws.endpoint_url.startswith("http://127.0.0.1:") and aws.port > 0
    env = aws.env()
    assert env["AWS_ENDPOINT_URL"] == aws.endpoint_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-north-1"
    assert env["AWS_ACCESS_KEY_ID"] and env["AWS_SECRET_ACCESS_KEY"]
    url = aws.client("sqs").create_queue(QueueName="probe")["QueueUrl"]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert boto3.session.Session().client("sqs").list_queues()["QueueUrls"] == [url]


def test_unstarted_server_refuses_use() -> None:
    with pytest.raises(LocalAwsError):
        LocalAws().client("sqs")


def test_every_translated_resource_exists(stack: DeployedStack) -> None:
    kinds = {r["Type"] for r in stack.template["Resources"].values()}
    assert {"AWS::SQS::Queue", "AWS::DynamoDB::Table", "AWS::KMS::Key", "AWS::KMS::Alias",
            "AWS::SecretsManager::Secret", "AWS::Lambda::Function", "AWS::Lambda::LayerVersion",
            "AWS::Lambda::EventSourceMapping", "AWS::Events::Rule", "AWS::IAM::Role"} <= kinds
    assert {r for r in stack.template["Resources"] if stack.created(r)} == set(stack.resources)
    assert not stack.created("AlarmTopic")  # no AlarmEmail given: its Condition is false
    assert stack.stack_id.startswith("arn:aws:cloudformation:eu-north-1:")
    assert "Transform" not in stack.template  # plain CloudFormation


def test_queues_have_the_templates_encryption_and_redrive(stack: DeployedStack, aws: LocalAws) -> None:
    sqs = aws.client("sqs")
    key_id = stack.resources["EncryptionKey"]
    main = sqs.get_queue_attributes(QueueUrl=stack.resources["SyncQueue"], AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=stack.resources["SyncDeadLetterQueue"],
                                   AttributeNames=["All"])["Attributes"]
    assert json.loads(main["RedrivePolicy"]) == {"deadLetterTargetArn": dlq["QueueArn"], "maxReceiveCount": 5}
    assert main["VisibilityTimeout"] == "1080"
    assert main["KmsMasterKeyId"] == key_id and dlq["KmsMasterKeyId"] == key_id
    assert dlq["MessageRetentionPeriod"] == "1209600"
    assert stack.queue_arn("SyncQueue") == main["QueueArn"]


def test_tables_have_the_templates_keys(stack: DeployedStack, aws: LocalAws) -> None:
    dynamodb = aws.client("dynamodb")
    state = dynamodb.describe_table(TableName=stack.resources["StateTable"])["Table"]
    assert {(k["AttributeName"], k["KeyType"]) for k in state["KeySchema"]} == {("pk", "HASH"), ("sk", "RANGE")}
    assert state["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    idem = dynamodb.describe_table(TableName=stack.resources["IdempotencyTable"])["Table"]
    assert idem["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    # The tables work: a conditional write lands and a second one is refused.
    item = {"pk": {"S": "wm#default#customer"}, "sk": {"S": "watermark"}}
    table = stack.resources["StateTable"]
    dynamodb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.put_item(TableName=table, Item=item, ConditionExpression="attribute_not_exists(pk)")


def test_secrets_are_created_from_their_definitions(stack: DeployedStack, aws: LocalAws) -> None:
    secrets = aws.client("secretsmanager")
    visma = secrets.describe_secret(SecretId=stack.resources["VismaCredentialsSecret"])
    assert visma["Name"] == "ml-connector/default/visma"
    assert visma["KmsKeyId"] == stack.resources["EncryptionKey"]
    value = json.loads(secrets.get_secret_value(SecretId=visma["ARN"])["SecretString"])
    assert set(value) == {"client_id", "client_secret", "tenant_id", "company_id"}
    marketo = secrets.get_secret_value(SecretId="ml-connector/default/marketo")
    assert marketo["ARN"] == stack.resources["MarketoCredentialsSecret"]
    assert set(json.loads(marketo["SecretString"])) == {"client_id", "client_secret"}


def test_kms_key_schedule_and_event_source_exist(stack: DeployedStack, aws: LocalAws) -> None:
    key = aws.client("kms").describe_key(KeyId="alias/ml-connector")["KeyMetadata"]
    assert key["KeyId"] == stack.resources["EncryptionKey"] and key["Enabled"]
    rule = aws.client("events").describe_rule(Name=stack.resources["DispatcherFunctionSchedule"])
    assert rule["ScheduleExpression"] == "rate(15 minutes)"
    assert rule["State"] == "DISABLED"  # ScheduleEnabled defaults to false (placeholder secrets)
    mapping = aws.client("lambda").get_event_source_mapping(UUID=stack.resources["WriterFunctionSyncQueue"])
    assert mapping["EventSourceArn"] == stack.queue_arn("SyncQueue")
    assert mapping["BatchSize"] == 20  # messages, each a pack of up to 300 records
    function = aws.client("lambda").get_function(FunctionName=stack.function_name("WriterFunction"))
    assert function["Configuration"]["Timeout"] == 180
    # The poller drains the poll-work queue one message at a time, with bounded concurrency.
    poll_work = aws.client("lambda").get_event_source_mapping(UUID=stack.resources["PollerFunctionPollWork"])
    assert poll_work["EventSourceArn"] == stack.queue_arn("PollWorkQueue")
    assert poll_work["BatchSize"] == 1 and poll_work["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert stack.event_source_mapping("PollerFunction")["ScalingConfig"] == {"MaximumConcurrency": "5"}
    # The dispatcher's asynchronous invocations: one retry, then the failure queue.
    config = aws.client("lambda").get_function_event_invoke_config(
        FunctionName=stack.function_name("DispatcherFunction"))
    assert (config["MaximumRetryAttempts"], config["MaximumEventAgeInSeconds"]) == (1, 900)
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == stack.queue_arn("PollFailureQueue")


def test_function_environment_resolves_globals_refs_and_parameters(stack: DeployedStack) -> None:
    env = stack.function_environment("PollerFunction")
    # All three only use Globals (so in-process runs share one runtime, as one container would).
    assert env == stack.function_environment("WriterFunction") == stack.function_environment("DispatcherFunction")
    assert env["POLL_WORK_QUEUE_URL"] == stack.resources["PollWorkQueue"]
    assert (env["SCHEDULE_RATE"], env["POLL_LEASE_SECONDS"]) == ("rate(15 minutes)", "330")
    assert env["STATE_TABLE"] == stack.resources["StateTable"]
    assert env["IDEMPOTENCY_TABLE"] == stack.resources["IdempotencyTable"]
    assert env["SYNC_QUEUE_URL"] == stack.resources["SyncQueue"]
    assert env["VISMA_SECRET_ID"] == stack.resources["VismaCredentialsSecret"]
    assert env["MARKETO_SECRET_ID"] == stack.resources["MarketoCredentialsSecret"]
    assert env["MARKETO_MUNCHKIN_ID"] == MUNCHKIN
    assert env["VISMA_BASE_URL"] == "https://api.finance.visma.net"
    assert env["VISMA_TOKEN_URL"] == "https://connect.visma.com/connect/token"
    assert env["CONNECTION_ID"] == "default" and env["LOG_LEVEL"] == "INFO"
    assert env["POWERTOOLS_SERVICE_NAME"] == stack.stack_name == "ml-connector"  # !Ref AWS::StackName
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "MlConnector"
    assert stack.function_timeout("PollerFunction") == 300 and stack.function_timeout("WriterFunction") == 180


def test_function_specific_variables_getatt_and_sub(fixture_stack: DeployedStack) -> None:
    echo = fixture_stack.function_environment("EchoFunction")
    worker = fixture_stack.function_environment("WorkerFunction")
    assert echo["ROLE"] == "echo" and worker["ROLE"] == "worker"
    assert echo["GREETING"] == worker["GREETING"] == "hei"
    assert echo["QUEUE_ARN"] == fixture_stack.queue_arn("WorkQueue")
    assert echo["LABEL"] == "fixture-hei-eu-north-1"
    assert fixture_stack.function_timeout("EchoFunction") == 7
    assert fixture_stack.function_timeout("WorkerFunction") == 30


def test_parameters_are_checked(fresh_aws: LocalAws) -> None:
    with pytest.raises(TemplateError, match="MarketoMunchkinId"):
        deploy_template(fresh_aws, REPO_TEMPLATE)
    with pytest.raises(TemplateError, match="Nonsense"):
        deploy_template(fresh_aws, REPO_TEMPLATE, parameters={"MarketoMunchkinId": MUNCHKIN, "Nonsense": "1"})


def test_parameter_overrides_reach_the_resources(fresh_aws: LocalAws) -> None:
    stack = deploy_template(fresh_aws, REPO_TEMPLATE, stack_name="other",
                            parameters={"MarketoMunchkinId": MUNCHKIN, "ConnectionId": "acme", "MaxReceiveCount": "2"})
    assert stack.resolve({"Fn::Sub": "${AWS::StackName}/${ConnectionId}"}) == "other/acme"
    names = {s["Name"] for s in fresh_aws.client("secretsmanager").list_secrets()["SecretList"]}
    assert names == {"other/acme/visma", "other/acme/marketo"}
    attributes = fresh_aws.client("sqs").get_queue_attributes(QueueUrl=stack.resources["SyncQueue"],
                                                              AttributeNames=["RedrivePolicy"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] == 2


def test_reset_forgets_everything(stack: DeployedStack, aws: LocalAws) -> None:
    assert aws.client("sqs").list_queues().get("QueueUrls")
    aws.reset()
    assert not aws.client("sqs").list_queues().get("QueueUrls")
    assert not aws.client("secretsmanager").list_secrets()["SecretList"]


def test_alarms_exist_and_notify_the_topic_when_an_email_is_given(fresh_aws: LocalAws) -> None:
    stack = deploy_template(fresh_aws, REPO_TEMPLATE, stack_name="alarmed",
                            parameters={"MarketoMunchkinId": "123-ABC-456", "AlarmEmail": "ops@example.com"})
    alarms = {a["AlarmName"]: a for a in fresh_aws.client("cloudwatch").describe_alarms()["MetricAlarms"]}
    by_id = {logical: alarms[stack.resources[logical]] for logical in
             ("DeadLetterAlarm", "QuarantineAlarm", "SyncLagAlarm", "MarketoQuotaAlarm")}
    topic = stack.resources["AlarmTopic"]
    assert all(a["AlarmActions"] == [topic] for a in by_id.values())
    assert by_id["DeadLetterAlarm"]["Dimensions"][0]["Value"].endswith(
        stack.resources["SyncDeadLetterQueue"].rsplit("/", 1)[-1])
    assert by_id["SyncLagAlarm"]["Threshold"] == 3600.0
    subs = fresh_aws.client("sns").list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [s["Endpoint"] for s in subs] == ["ops@example.com"]
