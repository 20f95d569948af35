"""Local AWS: moto in server mode on 127.0.0.1, and the stack built from template.yaml itself.

The SAM template is translated with aws-sam-translator (moto's CloudFormation ignores the SAM
transform), code locations point at a placeholder zip in moto's S3, and moto's CloudFormation creates
the stack. Resource kinds that moto's CloudFormation accepts but does not create (Secrets Manager
secrets, Lambda layer versions and permissions) are created through their service APIs from their
definitions in the same translated template, so every resource the template declares exists locally
with the deployed shape. Two moto quirks are corrected afterwards: KMS key policies are stored as
JSON (moto keeps a dict and then fails DescribeKey), and event source mappings are disabled, because
moto would try to run the function in Docker on every SendMessage; ``localrun.event_source`` plays
the mapping's part in-process.

moto keeps its state per process: two LocalAws servers in one process share it, and ``reset()``
clears both. Use one LocalAws per process (tests share one per session and reset between tests).
Starting a LocalAws installs ``localrun.fast_sqs`` in its process: moto's SQS with indexed storage
instead of per-call scans of every waiting message (same behaviour, tested against plain moto).
"""

from __future__ import annotations

import copy
import io
import json
import logging
import socket
import threading
import time
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import requests
from botocore.config import Config
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from werkzeug.serving import BaseWSGIServer, make_server

from localrun import atomic_dynamodb, fast_sqs
from localrun.sam_template import Resolver, TemplateError, load_template, parameter_values

FAKE_ACCESS_KEY = "testing"
FAKE_SECRET_KEY = "testing"  # moto accepts any; never a real credential
CODE_BUCKET_SUFFIX = "local-code"
_STACK_DONE = ("CREATE_COMPLETE",)
_STACK_FAILED = ("CREATE_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "ROLLBACK_IN_PROGRESS")


class LocalAwsError(RuntimeError):
    pass


class _QuietHandler(MotoRequestHandler):
    """No access log line per request: a drain makes thousands of calls."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes; without this, Nagle + delayed ACK add ~40 ms a call.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


@dataclass
class _ArmedAwsFault:
    target: str  # the X-Amz-Target operation, e.g. "DynamoDB_20120810.UpdateItem"
    body_contains: str | None
    remaining: int
    status: int
    error: dict[str, str]
    skip: int = 0  # matching calls to let through first


class AwsFaults:
    """Switchable AWS-side faults in front of moto: the next matching calls get an error answer and moto
    never sees them. Used to crash a handler at a chosen point (e.g. a state write after Marketo accepted
    a chunk, or an SQS send mid-window) with an error the SDK does not retry, as a killed process would
    leave things. Matching is on the JSON protocol's X-Amz-Target and a substring of the request body."""

    def __init__(self) -> None:
        self._armed: list[_ArmedAwsFault] = []
        self._lock = threading.Lock()
        self.fired: dict[str, int] = {}

    def fail_next(self, target: str, *, times: int = 1, after: int = 0, body_contains: str | None = None,
                  status: int = 400, error_type: str = "AccessDeniedException",
                  message: str = "injected fault") -> None:
        """Fail ``times`` matching calls once ``after`` matching calls have gone through."""
        if times < 1 or after < 0:
            raise ValueError("times must be at least 1 and after at least 0")
        prefix = target.split(".", 1)[0]
        namespace = "com.amazonaws.sqs" if prefix == "AmazonSQS" else f"com.amazonaws.{prefix.lower()}"
        with self._lock:
            self._armed.append(_ArmedAwsFault(target, body_contains, times, status,
                                              {"__type": f"{namespace}#{error_type}", "message": message},
                                              after))

    def clear(self) -> None:
        with self._lock:
            self._armed.clear()

    def pending(self) -> int:
        with self._lock:
            return sum(a.remaining for a in self._armed)

    def take(self, target: str, body: bytes) -> _ArmedAwsFault | None:
        with self._lock:
            for armed in self._armed:
                if armed.target == target and (armed.body_contains is None
                                               or armed.body_contains.encode("utf-8") in body):
                    if armed.skip:
                        armed.skip -= 1
                        return None
                    armed.remaining -= 1
                    if armed.remaining == 0:
                        self._armed.remove(armed)
                    self.fired[target] = self.fired.get(target, 0) + 1
                    return armed
        return None

    def middleware(self, app: Callable[..., Any]) -> Callable[..., Any]:
        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            if not target or not self._armed:
                return app(environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            armed = self.take(target, body)
            if armed is None:
                return app(environ, start_response)
            payload = json.dumps(armed.error).encode("utf-8")
            start_response(f"{armed.status} Injected", [("Content-Type", "application/x-amz-json-1.0"),
                                                        ("Content-Length", str(len(payload)))])
            return [payload]

        return wsgi


def _quiet_moto() -> None:
    # moto logs once per unsupported resource kind; we create those kinds directly (see deploy_template).
    logging.getLogger("moto").setLevel(logging.ERROR)


class LocalAws:
    """moto's server on 127.0.0.1 (port 0 picks a free one); boto3 reaches it through AWS_ENDPOINT_URL."""

    def __init__(self, port: int = 0, region: str = "eu-north-1") -> None:
        self.port = port
        self.region = region
        self.endpoint_url = ""
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._clients: dict[str, Any] = {}
        self._session: boto3.session.Session | None = None
        self._lock = threading.Lock()
        self.faults = AwsFaults()
        # Services answered by another emulator process (service -> endpoint): the bench runs DynamoDB and SQS
        # apart so that one moto process does not bound the measurement. Empty: this server answers all.
        self.service_endpoints: dict[str, str] = {}

    def start(self) -> LocalAws:
        if self._server is None:
            _quiet_moto()
            # moto's SQS scans every waiting message on each call; a full load would spend minutes there.
            fast_sqs.install()
            # moto checks a write's condition and writes with nothing between; DynamoDB does both at once.
            atomic_dynamodb.install()
            app = self.faults.middleware(DomainDispatcherApplication(create_backend_app))
            self._server = make_server("127.0.0.1", self.port, app, threaded=True, request_handler=_QuietHandler)
            self.port = self._server.server_port
            self.endpoint_url = f"http://127.0.0.1:{self.port}"
            # stop() waits for the serve loop to notice; it looks every 0.5 s by default, every stack's stop paid it.
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="moto-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=5)
            self._server, self._thread = None, None
            self._clients.clear()

    def __enter__(self) -> LocalAws:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment that points boto3 (in this process or a child) at the server, with fake credentials."""
        self._require_started()
        # boto3 (>= 1.28) reads a service's own endpoint from AWS_ENDPOINT_URL_<SERVICE> before AWS_ENDPOINT_URL.
        routed = {f"AWS_ENDPOINT_URL_{service.upper()}": url for service, url in self.service_endpoints.items()}
        return {"AWS_ENDPOINT_URL": self.endpoint_url, **routed, "AWS_DEFAULT_REGION": self.region,
                "AWS_REGION": self.region, "AWS_ACCESS_KEY_ID": FAKE_ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": FAKE_SECRET_KEY}

    def endpoint_for(self, service: str) -> str:
        """The endpoint that answers ``service`` (boto3's service name, e.g. "dynamodb")."""
        return self.service_endpoints.get(service, self.endpoint_url)

    def session(self) -> boto3.session.Session:
        if self._session is None:
            self._session = _isolated_session(self.region)
        return self._session

    def client(self, service: str) -> Any:
        """A boto3 client for the server, one per service (creating clients costs ~0.1 s; they are thread-safe)."""
        self._require_started()
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session().client(
                    service, endpoint_url=self.endpoint_for(service),
                    config=Config(retries={"mode": "standard", "max_attempts": 2}))
            return self._clients[service]

    def reset(self) -> None:
        """Forget every resource (moto's reset API)."""
        self._require_started()
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()

    def _require_started(self) -> None:
        if self._server is None:
            raise LocalAwsError("LocalAws is not started: call start() or use it as a context manager")


def _isolated_session(region: str) -> boto3.session.Session:
    """A session that ignores the caller's AWS_PROFILE (whose profile may not exist, or be a real account)."""
    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    return boto3.session.Session(botocore_session=core, aws_access_key_id=FAKE_ACCESS_KEY,
                                 aws_secret_access_key=FAKE_SECRET_KEY, region_name=region)


@dataclass
class DeployedStack:
    stack_name: str
    template: dict[str, Any]  # the translated (plain CloudFormation) template
    resources: dict[str, str]  # logical id -> physical id (queue URL, table name, secret ARN, ...)
    aws: LocalAws
    parameters: dict[str, str]
    template_path: Path
    account_id: str
    stack_id: str = ""
    _attributes: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)

    # -- resolution ---------------------------------------------------------------------------
    def refs(self) -> dict[str, str]:
        partition = "aws"
        pseudo = {"AWS::StackName": self.stack_name, "AWS::Region": self.aws.region, "AWS::AccountId": self.account_id,
                  "AWS::Partition": partition, "AWS::URLSuffix": "amazonaws.com",
                  "AWS::StackId": self.stack_id}
        return {**pseudo, **self.parameters, **self.resources}

    def resolve(self, value: Any) -> Any:
        """A template value with Ref / GetAtt / Sub / Join resolved against this stack."""
        return self.resolver()(value)

    def resolver(self) -> Resolver:
        return Resolver(self.refs(), self.get_att, self.template.get("Conditions"))

    def created(self, logical_id: str) -> bool:
        """False for a resource whose Condition is false (CloudFormation leaves it out)."""
        condition = self.template["Resources"][logical_id].get("Condition")
        return condition is None or self.resolver().condition(condition)

    def get_att(self, logical_id: str, attribute: str) -> str:
        key = (logical_id, attribute)
        if key not in self._attributes:
            self._attributes[key] = _attribute(self, logical_id, attribute)
        return self._attributes[key]

    def resource(self, logical_id: str) -> dict[str, Any]:
        found = self.template["Resources"].get(logical_id)
        if found is None:
            raise TemplateError(f"no resource {logical_id} in the translated template")
        return dict(found)

    # -- functions ----------------------------------------------------------------------------
    def function_properties(self, logical_id: str) -> dict[str, Any]:
        resource = self.resource(logical_id)
        if resource["Type"] != "AWS::Lambda::Function":
            raise TemplateError(f"{logical_id} is a {resource['Type']}, not a function")
        return dict(resource.get("Properties", {}))

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals + function environment variables, intrinsics resolved (what the deployed function sees)."""
        variables = self.function_properties(logical_id).get("Environment", {}).get("Variables", {})
        return {name: str(value) for name, value in self.resolve(variables).items()}

    def function_timeout(self, logical_id: str) -> int:
        return int(self.resolve(self.function_properties(logical_id).get("Timeout", 3)))

    def function_memory(self, logical_id: str) -> int:
        return int(self.resolve(self.function_properties(logical_id).get("MemorySize", 128)))

    def function_name(self, logical_id: str) -> str:
        return self.resources[logical_id]

    def queue_arn(self, logical_id: str) -> str:
        return self.get_att(logical_id, "Arn")

    def event_source_mapping(self, function_logical_id: str) -> dict[str, Any]:
        """Resolved properties of the SQS/stream event source mapping that targets the function."""
        for resource in self.template["Resources"].values():
            if resource["Type"] != "AWS::Lambda::EventSourceMapping":
                continue
            props = resource.get("Properties", {})
            if props.get("FunctionName") == {"Ref": function_logical_id}:
                resolved: dict[str, Any] = self.resolve(props)
                return resolved
        raise TemplateError(f"{function_logical_id} has no event source mapping in the template")

    def logical_id_for_arn(self, arn: str, resource_type: str) -> str:
        for logical_id, resource in self.template["Resources"].items():
            if resource["Type"] == resource_type and self.get_att(logical_id, "Arn") == arn:
                return str(logical_id)
        raise TemplateError(f"no {resource_type} with ARN {arn} in the stack")


def _attribute(stack: DeployedStack, logical_id: str, attribute: str) -> str:
    """GetAtt values, read from the emulated services (so they are the real local ARNs)."""
    kind = stack.resource(logical_id)["Type"]
    physical = stack.resources[logical_id]
    aws = stack.aws
    readers: dict[tuple[str, str], Any] = {
        ("AWS::SQS::Queue", "Arn"): lambda: aws.client("sqs").get_queue_attributes(
            QueueUrl=physical, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"],
        ("AWS::SQS::Queue", "QueueName"): lambda: physical.rsplit("/", 1)[-1],
        ("AWS::SQS::Queue", "QueueUrl"): lambda: physical,
        ("AWS::KMS::Key", "Arn"): lambda: aws.client("kms").describe_key(KeyId=physical)["KeyMetadata"]["Arn"],
        ("AWS::KMS::Key", "KeyId"): lambda: physical,
        ("AWS::DynamoDB::Table", "Arn"): lambda: aws.client("dynamodb").describe_table(
            TableName=physical)["Table"]["TableArn"],
        ("AWS::IAM::Role", "Arn"): lambda: aws.client("iam").get_role(RoleName=physical)["Role"]["Arn"],
        ("AWS::Lambda::Function", "Arn"): lambda: aws.client("lambda").get_function(
            FunctionName=physical)["Configuration"]["FunctionArn"],
        ("AWS::SecretsManager::Secret", "Id"): lambda: physical,
        ("AWS::Events::Rule", "Arn"): lambda: aws.client("events").describe_rule(Name=physical)["Arn"],
    }
    reader = readers.get((kind, attribute))
    if reader is None:
        raise TemplateError(f"GetAtt {logical_id}.{attribute} ({kind}) is not supported locally")
    return str(reader())


# -- deployment -------------------------------------------------------------------------------

def deploy_template(aws: LocalAws, template_path: str | Path = "template.yaml", *, stack_name: str = "ml-connector",
                    parameters: dict[str, str] | None = None) -> DeployedStack:
    """Translate template.yaml, create it as a stack in moto, and return what was created."""
    with warnings.catch_warnings():
        # moto warns about unsupported kinds whenever it parses the stack; those are created directly.
        warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)
        return _deploy(aws, template_path, stack_name, parameters)


def _deploy(aws: LocalAws, template_path: str | Path, stack_name: str,
            parameters: dict[str, str] | None) -> DeployedStack:
    path = Path(template_path).resolve()
    sam = load_template(path)
    values = parameter_values(sam, parameters)
    bucket, key = _upload_placeholder_code(aws, stack_name)
    translated = translate(sam, values, aws.region, code_location=(bucket, key))
    cfn = aws.client("cloudformation")
    cfn.create_stack(StackName=stack_name, TemplateBody=json.dumps(_select_indexes_resolved(translated, values)),
                     Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
                     Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"])
    stack_id = _wait_for_stack(cfn, stack_name)
    listed = cfn.describe_stack_resources(StackName=stack_name)["StackResources"]
    # moto lists no-op resources without a physical id (or without a logical id): those are created below.
    resources = {r["LogicalResourceId"]: r["PhysicalResourceId"] for r in listed if r.get("PhysicalResourceId")}
    account = aws.client("sts").get_caller_identity()["Account"]
    stack = DeployedStack(stack_name=stack_name, template=translated, resources=resources, aws=aws,
                          parameters=values, template_path=path, account_id=account, stack_id=stack_id)
    # Fix-ups first: resolving the direct creations below may read the key (GetAtt Arn).
    for logical_id, resource in translated["Resources"].items():
        fixup = _FIXUPS.get(resource["Type"])
        if fixup is not None and logical_id in stack.resources:
            fixup(stack, logical_id, resource.get("Properties", {}))
    for logical_id, resource in translated["Resources"].items():
        creator = _DIRECT_CREATORS.get(resource["Type"])
        if logical_id not in stack.resources and creator is not None and stack.created(logical_id):
            stack.resources[logical_id] = creator(stack, logical_id, stack.resolve(resource.get("Properties", {})))
    missing = sorted(r for r in set(translated["Resources"]) - set(stack.resources) if stack.created(r))
    if missing:
        raise LocalAwsError(f"stack {stack_name}: moto did not create {', '.join(missing)}")
    return stack


def _select_indexes_resolved(node: Any, values: dict[str, str]) -> Any:
    """The template as moto can create it: moto takes an Fn::Select index literally, where CloudFormation also
    accepts a Ref to a parameter (the writer's MaximumConcurrency is picked that way)."""
    if isinstance(node, list):
        return [_select_indexes_resolved(item, values) for item in node]
    if not isinstance(node, dict):
        return node
    select = node.get("Fn::Select")
    if isinstance(select, list) and isinstance(select[0], dict) and set(select[0]) == {"Ref"} \
            and select[0]["Ref"] in values:
        return {"Fn::Select": [values[select[0]["Ref"]], _select_indexes_resolved(select[1], values)]}
    return {key: _select_indexes_resolved(value, values) for key, value in node.items()}


def translate(sam: dict[str, Any], parameters: dict[str, str], region: str, *,
              code_location: tuple[str, str] = ("code-bucket", "code.zip")) -> dict[str, Any]:
    """SAM -> plain CloudFormation, with the library SAM CLI and CloudFormation's transform use.

    Local CodeUri / ContentUri first become ``code_location`` in S3, as `sam package` would do.
    """
    translator = Translator(managed_policy_map=None, sam_parser=Parser(), boto_session=_isolated_session(region))
    packaged = _with_code_in_s3(sam, *code_location)
    result: dict[str, Any] = translator.translate(packaged, parameter_values=dict(parameters),
                                                  get_managed_policy_map=dict)
    translator.metrics.publish()  # to its dummy publisher; otherwise it warns when garbage-collected
    return result


def _with_code_in_s3(sam: dict[str, Any], bucket: str, key: str) -> dict[str, Any]:
    """What `sam package` does: local CodeUri / ContentUri become S3 locations (here one placeholder zip)."""
    packaged = copy.deepcopy(sam)
    location = {"Bucket": bucket, "Key": key}
    for resource in packaged["Resources"].values():
        props = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::Function" and "InlineCode" not in props:
            props["CodeUri"] = location
        elif resource.get("Type") == "AWS::Serverless::LayerVersion":
            props["ContentUri"] = location
    packaged.get("Globals", {}).get("Function", {}).pop("CodeUri", None)
    return packaged


def _upload_placeholder_code(aws: LocalAws, stack_name: str) -> tuple[str, str]:
    # The code itself runs in-process (localrun.lambda_runtime); moto only needs a valid zip.
    bucket, key = f"{stack_name.lower()}-{CODE_BUCKET_SUFFIX}", "placeholder.zip"
    s3 = aws.client("s3")
    options: dict[str, Any] = {}
    if aws.region != "us-east-1":
        options["CreateBucketConfiguration"] = {"LocationConstraint": aws.region}
    try:
        s3.create_bucket(Bucket=bucket, **options)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def lambda_handler(event, context):\n    return None\n")
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return bucket, key


def _wait_for_stack(cfn: Any, stack_name: str, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        stack = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        status = stack["StackStatus"]
        if status in _STACK_DONE:
            return str(stack["StackId"])
        if status in _STACK_FAILED or time.monotonic() > deadline:
            reason = stack.get("StackStatusReason", "")
            raise LocalAwsError(f"stack {stack_name}: {status} {reason}".strip())
        time.sleep(0.05)


def _create_secret(stack: DeployedStack, logical_id: str, props: dict[str, Any]) -> str:
    request: dict[str, Any] = {"Name": props.get("Name") or f"{stack.stack_name}-{logical_id}",
                               "SecretString": props.get("SecretString", "{}")}
    for option in ("KmsKeyId", "Description", "Tags"):
        if option in props:
            request[option] = props[option]
    return str(stack.aws.client("secretsmanager").create_secret(**request)["ARN"])


def _create_layer_version(stack: DeployedStack, logical_id: str, props: dict[str, Any]) -> str:
    request = {k: v for k, v in props.items() if k in ("LayerName", "Description", "Content", "CompatibleRuntimes",
                                                          "CompatibleArchitectures", "LicenseInfo")}
    request.setdefault("LayerName", f"{stack.stack_name}-{logical_id}")
    return str(stack.aws.client("lambda").publish_layer_version(**request)["LayerVersionArn"])


def _create_alarm(stack: DeployedStack, logical_id: str, props: dict[str, Any]) -> str:
    request = {k: v for k, v in props.items() if k not in ("AlarmName",)}
    name = props.get("AlarmName") or f"{stack.stack_name}-{logical_id}"
    for key in ("Period", "EvaluationPeriods"):
        request[key] = int(request[key])
    request["Threshold"] = float(request["Threshold"])
    stack.aws.client("cloudwatch").put_metric_alarm(AlarmName=name, **request)
    return name


def _create_topic(stack: DeployedStack, logical_id: str, props: dict[str, Any]) -> str:
    attributes = {k: str(props[k]) for k in ("DisplayName", "KmsMasterKeyId") if k in props}
    arn = stack.aws.client("sns").create_topic(Name=props.get("TopicName") or f"{stack.stack_name}-{logical_id}",
                                               Attributes=attributes)["TopicArn"]
    for sub in props.get("Subscription", []):
        stack.aws.client("sns").subscribe(TopicArn=arn, Protocol=sub["Protocol"], Endpoint=sub["Endpoint"])
    return str(arn)


def _create_permission(stack: DeployedStack, logical_id: str, props: dict[str, Any]) -> str:
    request = {k: v for k, v in props.items() if k in ("FunctionName", "Action", "Principal", "SourceArn",
                                                          "SourceAccount")}
    stack.aws.client("lambda").add_permission(StatementId=logical_id, **request)
    return logical_id


def _create_event_invoke_config(stack: DeployedStack, logical_id: str, props: dict[str, Any]) -> str:
    # The poller's retry/age settings and on-failure destination: recorded so the local stack has the
    # deployed shape (moto never invokes asynchronously here; localrun calls the handler in-process).
    request = {k: v for k, v in props.items() if k in ("FunctionName", "Qualifier", "DestinationConfig")}
    for key in ("MaximumRetryAttempts", "MaximumEventAgeInSeconds"):
        if key in props:
            request[key] = int(props[key])
    stack.aws.client("lambda").put_function_event_invoke_config(**request)
    return logical_id


def _repair_key_policy(stack: DeployedStack, logical_id: str, props: dict[str, Any]) -> None:
    # moto's CloudFormation stores KeyPolicy as a dict where KMS keeps a JSON string; every later
    # DescribeKey then fails. Store the template's policy the way KMS does.
    if "KeyPolicy" in props:
        policy = json.dumps(stack.resolve(props["KeyPolicy"]))
        stack.aws.client("kms").put_key_policy(KeyId=stack.resources[logical_id], PolicyName="default", Policy=policy)


def _hand_over_event_source(stack: DeployedStack, logical_id: str, _props: dict[str, Any]) -> None:
    # An enabled mapping makes moto receive every sent message and try to run the function in Docker,
    # which fails and burns receive counts. localrun.event_source.SqsEventSource plays its part instead.
    stack.aws.client("lambda").update_event_source_mapping(UUID=stack.resources[logical_id], Enabled=False)


# Resources moto's CloudFormation creates, but not quite as AWS would.
_FIXUPS: dict[str, Callable[[DeployedStack, str, dict[str, Any]], None]] = {
    "AWS::KMS::Key": _repair_key_policy,
    "AWS::Lambda::EventSourceMapping": _hand_over_event_source,
}

# Resource kinds moto's CloudFormation accepts but leaves uncreated (or without a physical id).
_DIRECT_CREATORS: dict[str, Callable[[DeployedStack, str, dict[str, Any]], str]] = {
    "AWS::SecretsManager::Secret": _create_secret,
    "AWS::Lambda::LayerVersion": _create_layer_version,
    "AWS::Lambda::Permission": _create_permission,
    "AWS::Lambda::EventInvokeConfig": _create_event_invoke_config,
    "AWS::CloudWatch::Alarm": _create_alarm,
    "AWS::SNS::Topic": _create_topic,
}
