"""The deployed local stack, reachable from other processes (several writers, the memory probe).

``LocalEnvironment`` runs moto's server in a thread of the bench process and the handlers in-process,
one invocation at a time (``localrun.lambda_runtime`` holds a process-wide lock around os.environ).
Concurrent writers therefore run in worker processes: each gets a ``StackSpec`` (the picklable part of
``DeployedStack``) plus the environment ``LocalEnvironment.env()`` gives the handlers, and rebuilds the
stack around a ``RemoteAws`` that points boto3 at the same moto server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from localrun.aws import DeployedStack, LocalAws


class RemoteAws(LocalAws):
    """A LocalAws whose server runs in another process: same clients and env(), nothing to start or stop."""

    def __init__(self, endpoint_url: str, region: str, service_endpoints: dict[str, str] | None = None) -> None:
        super().__init__(region=region)
        self.endpoint_url = endpoint_url
        self.service_endpoints = dict(service_endpoints or {})

    def _require_started(self) -> None:
        return None  # the owning process started it

    def start(self) -> RemoteAws:
        return self

    def stop(self) -> None:
        self._clients.clear()


class StackSpec(BaseModel):
    """What a worker process needs to call the stack's handlers: the deployed stack and the handler env."""

    stack_name: str
    template: dict[str, Any]
    resources: dict[str, str]
    parameters: dict[str, str]
    template_path: str
    account_id: str
    stack_id: str
    endpoint_url: str
    region: str
    handler_env: dict[str, str]
    service_endpoints: dict[str, str] = {}  # services answered by emulator processes of their own (bench.emulators)

    @classmethod
    def of(cls, stack: DeployedStack, handler_env: dict[str, str]) -> StackSpec:
        return cls(stack_name=stack.stack_name, template=stack.template, resources=stack.resources,
                   parameters=stack.parameters, template_path=str(stack.template_path), account_id=stack.account_id,
                   stack_id=stack.stack_id, endpoint_url=stack.aws.endpoint_url, region=stack.aws.region,
                   handler_env=handler_env, service_endpoints=stack.aws.service_endpoints)

    def stack(self) -> DeployedStack:
        return DeployedStack(stack_name=self.stack_name, template=self.template, resources=self.resources,
                             aws=RemoteAws(self.endpoint_url, self.region, self.service_endpoints),
                             parameters=self.parameters,
                             template_path=Path(self.template_path), account_id=self.account_id,
                             stack_id=self.stack_id)
