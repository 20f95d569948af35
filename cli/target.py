"""Where CLI commands act: a deployed stack (``--stack``) or a running ``ml-connector local up``.

Either way the CLI runs the connector's own code in-process with exactly the environment the
deployed functions have (read from Lambda's configuration, or from the local stack's file), so
status, replay, redrive, quarantine and preview read and change the same state the Lambdas use.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError
from pydantic import BaseModel, ValidationError

from ml_connector.config import is_loopback

LOCAL_TARGET_FILE = Path(".local") / "target.json"
FUNCTIONS = ("PollerFunction", "WriterFunction")
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class TargetError(RuntimeError):
    pass


class Target(BaseModel):
    name: str
    kind: str  # "local" or "stack"
    region: str
    aws_endpoint_url: str | None = None
    env: dict[str, str]
    functions: dict[str, str] = {}

    @classmethod
    def from_file(cls, path: Path = LOCAL_TARGET_FILE) -> Target:
        if not path.exists():
            raise TargetError(f"no local stack running ({path} not found): start one with `ml-connector local up`, "
                              "or name a deployed stack with --stack")
        try:
            return cls.model_validate_json(path.read_text())
        except ValidationError as exc:
            raise TargetError(f"{path}: not a target file ({exc.error_count()} error(s)); start the local stack "
                              "again with `ml-connector local up`") from exc

    @classmethod
    def from_stack(cls, stack_name: str, region: str | None = None) -> Target:
        session = boto3.session.Session(region_name=region)
        _check_region(session)
        cfn, lam = session.client("cloudformation"), session.client("lambda")
        functions, env = {}, {}
        try:
            resources = {r["LogicalResourceId"]: r.get("PhysicalResourceId")
                         for page in cfn.get_paginator("list_stack_resources").paginate(StackName=stack_name)
                         for r in page["StackResourceSummaries"] if r.get("LogicalResourceId")}
        except ClientError as exc:
            if "does not exist" not in str(exc.response.get("Error", {}).get("Message", "")):
                raise
            raise TargetError(f"stack {stack_name} not found in region {session.region_name}: "
                              "check --stack and --region") from exc
        for logical_id in FUNCTIONS:
            name = resources.get(logical_id)
            if not name:
                raise TargetError(f"stack {stack_name} has no {logical_id}: is it an ml-connector stack?")
            functions[logical_id] = name
            config = lam.get_function_configuration(FunctionName=name)
            env.update(config.get("Environment", {}).get("Variables", {}))
        return cls(name=stack_name, kind="stack", region=session.region_name or "", env=env, functions=functions)

    @property
    def stack_name(self) -> str:
        """The CloudFormation stack (a local target's is the service name the template gives its functions)."""
        return self.name if self.kind == "stack" else self.env.get("POWERTOOLS_SERVICE_NAME", self.name)

    def write(self, path: Path = LOCAL_TARGET_FILE) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=2))

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """Process environment as the functions see it, restored afterwards."""
        extra: dict[str, str] = {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region,
                                 "POWERTOOLS_TRACE_DISABLED": "true", **self.env}
        if self.aws_endpoint_url:
            if not is_loopback(self.aws_endpoint_url):
                raise TargetError("aws_endpoint_url must be a loopback address (a local emulator)")
            extra.update({"AWS_ENDPOINT_URL": self.aws_endpoint_url, **FAKE_CREDENTIALS})
        saved = dict(os.environ)
        os.environ.update(extra)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)


def _check_region(session: boto3.session.Session) -> None:
    """An unknown region would otherwise surface as a connection error after retries (a well-formed name) or
    a botocore exception (a malformed one)."""
    region = session.region_name
    if not region:
        return  # botocore raises NoRegionError on the first call, which the CLI explains
    if os.environ.get("AWS_ENDPOINT_URL") and is_loopback(os.environ["AWS_ENDPOINT_URL"]):
        return  # a local emulator takes any region name
    known = {r for p in session.get_available_partitions() for r in session.get_available_regions("cloudformation", p)}
    if region not in known:
        raise TargetError(f"unknown AWS region {region!r}: pass --region with one of your account's regions "
                          "(e.g. eu-north-1)")


def resolve(stack: str | None, region: str | None, target_file: str | None) -> Target:
    if stack:
        return Target.from_stack(stack, region)
    return Target.from_file(Path(target_file) if target_file else LOCAL_TARGET_FILE)


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, ensure_ascii=False)
