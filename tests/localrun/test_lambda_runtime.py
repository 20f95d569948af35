"""The in-process Lambda runtime: handler loading from the template, environment, context, deadline."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from localrun.aws import DeployedStack
from localrun.lambda_runtime import (
    FunctionTimeoutError,
    LambdaContext,
    function_code,
    invoke,
    load_handler,
    reset_handlers,
)
from localrun.sam_template import TemplateError

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_TEMPLATE = FIXTURES / "template.yaml"
REPO = Path(__file__).resolve().parents[2]


def test_function_code_comes_from_the_template() -> None:
    code = function_code("EchoFunction", FIXTURE_TEMPLATE)
    assert code.code_dir == FIXTURES / "echo"
    assert (code.module, code.function, code.handler) == ("app", "lambda_handler", "app.lambda_handler")
    assert code.layer_dirs == (FIXTURES / "layer",)


def test_repo_template_points_at_the_function_and_layer_sources() -> None:
    for logical_id, directory in (("PollerFunction", "poller"), ("WriterFunction", "writer")):
        code = function_code(logical_id, REPO / "template.yaml")
        assert code.code_dir == REPO / "functions" / directory
        assert (code.code_dir / "app.py").is_file()
        assert code.layer_dirs == (REPO / "layers" / "common",)
        assert (code.layer_dirs[0] / "ml_connector" / "__init__.py").is_file()


def test_same_file_name_loads_as_separate_modules() -> None:
    reset_handlers()
    echo = load_handler("EchoFunction", FIXTURE_TEMPLATE)
    worker = load_handler("WorkerFunction", FIXTURE_TEMPLATE)
    plain = load_handler("PlainWorkerFunction", FIXTURE_TEMPLATE)
    assert echo.__module__ != worker.__module__ != plain.__module__
    assert worker is not plain and worker.__globals__["CALLS"] is not plain.__globals__["CALLS"]
    assert load_handler("WorkerFunction", FIXTURE_TEMPLATE) is worker  # warm: loaded once
    assert str(FIXTURES / "echo") not in sys.path  # task root only on sys.path while importing
    reset_handlers()
    assert load_handler("WorkerFunction", FIXTURE_TEMPLATE) is not worker  # cold start after a reset


def test_unknown_function_is_an_error() -> None:
    with pytest.raises(TemplateError, match="NoSuchFunction"):
        load_handler("NoSuchFunction", FIXTURE_TEMPLATE)
    with pytest.raises(TemplateError, match="WorkQueue"):
        load_handler("WorkQueue", FIXTURE_TEMPLATE)


def test_invoke_runs_with_the_functions_environment_and_restores_ours(
        fixture_stack: DeployedStack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_PROFILE", "someones-real-profile")
    monkeypatch.setenv("GREETING", "from-the-caller")
    before = dict(os.environ)
    result = invoke(fixture_stack, "EchoFunction", {}, env={"EXTRA": "override"})
    env = result["env"]
    assert env["GREETING"] == "hei" and env["ROLE"] == "echo" and env["EXTRA"] == "override"
    assert env["WORK_QUEUE_URL"] == fixture_stack.resources["WorkQueue"]
    assert env["QUEUE_ARN"] == fixture_stack.queue_arn("WorkQueue")
    assert env["AWS_PROFILE"] is None  # the caller's AWS settings never leak into the function
    assert env["AWS_ENDPOINT_URL"] == fixture_stack.aws.endpoint_url
    assert env["AWS_REGION"] == "eu-north-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == fixture_stack.function_name("EchoFunction")
    assert env["_HANDLER"] == "app.lambda_handler"
    assert result["layer"] == "from-fixture-layer" and result["helper"] == "echo-helper"
    assert result["at_import"] == "hei"  # the cold start ran with the function's environment
    assert dict(os.environ) == before


def test_handler_reaches_the_local_aws_through_boto3(fixture_stack: DeployedStack) -> None:
    fixture_stack.aws.client("secretsmanager").put_secret_value(
        SecretId=fixture_stack.resources["FixtureSecret"], SecretString=json.dumps({"word": "local"}))
    result = invoke(fixture_stack, "EchoFunction", {"read_secret": True})
    assert json.loads(result["secret"]) == {"word": "local"}


def test_context_matches_the_template(fixture_stack: DeployedStack) -> None:
    first = invoke(fixture_stack, "EchoFunction", {})
    second = invoke(fixture_stack, "WorkerFunction", {"Records": []})
    name = fixture_stack.function_name("EchoFunction")
    assert first["function_name"] == name
    assert first["invoked_function_arn"] == f"arn:aws:lambda:eu-north-1:{fixture_stack.account_id}:function:{name}"
    assert first["memory_limit_in_mb"] == 256
    assert first["log_group_name"] == f"/aws/lambda/{name}"
    assert 6_000 < first["remaining_ms"] <= 7_000  # Timeout: 7 in the fixture's Globals
    assert second == {"batchItemFailures": [], "handled": 0}
    again = invoke(fixture_stack, "EchoFunction", {})
    assert again["aws_request_id"] != first["aws_request_id"]


def test_deadline_counts_down_and_overrun_fails_the_invocation(fixture_stack: DeployedStack) -> None:
    result = invoke(fixture_stack, "EchoFunction", {"sleep": 0.15}, timeout_s=1.0)
    assert 700 < result["remaining_ms"] <= 860
    with pytest.raises(FunctionTimeoutError, match="past its 0.05s timeout"):
        invoke(fixture_stack, "EchoFunction", {"sleep": 0.1}, timeout_s=0.05)


def test_context_remaining_time_never_negative() -> None:
    context = LambdaContext(function_name="f", memory_limit_in_mb=128, timeout_s=0.0)
    assert context.get_remaining_time_in_millis() == 0
    assert context.log_stream_name.count("[$LATEST]") == 1


def test_handler_exception_propagates_and_environment_is_restored(fixture_stack: DeployedStack) -> None:
    before = dict(os.environ)
    message = {"body": json.dumps({"action": "raise"}), "messageId": "m1"}
    with pytest.raises(RuntimeError, match="poison"):
        invoke(fixture_stack, "WorkerFunction", {"Records": [message]})
    assert dict(os.environ) == before
