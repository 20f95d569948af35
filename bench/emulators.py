"""DynamoDB and SQS each on a moto server process of its own, so that one emulator process is not the bound.

``LocalAws`` runs one moto server in a thread of the bench process: every DynamoDB and SQS call of the
poller and of all writer processes is answered there, under one GIL, next to the sandboxes and the poller.
``SplitAws`` starts it the same way (CloudFormation builds the stack there), then starts one child process
per service in ``SERVICES``, copies the stack's tables and queues into them (same names, keys, indexes, TTL,
queue attributes and redrive), and routes those services to them: boto3 clients made by ``client()`` and,
through ``env()``'s AWS_ENDPOINT_URL_<SERVICE>, every handler's. Secrets, KMS, CloudWatch, Lambda and
CloudFormation stay on the first server.

A child runs ``python -m bench.emulators <service>``: moto's server app behind a server that keeps
connections open (``bench.keepalive``; werkzeug's closes each one), with the bench's routing speed-up,
moto's SQS with indexed storage (``localrun.fast_sqs``), moto's DynamoDB with plain SET updates applied
without its expression validator (``bench.fast_dynamodb``), the bench's meters (for DynamoDB item calls and
request units as billed, for SQS requests as made and as billed: ``bench.sqs_requests``), and one lock around
each DynamoDB request: moto's Query iterates a partition's dict while another thread may insert into it
("dictionary changed size during iteration"). The lock costs nothing measurable (moto's Python work holds the
GIL anyway). ``GET /bench/meters`` answers the meters and the process's CPU seconds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import requests

from bench.sqs_requests import SqsCounts, SqsRequests
from localrun.aws import DeployedStack, LocalAws

SERVICES = ("dynamodb", "sqs")
METERS_PATH = "/bench/meters"
ROOT = Path(__file__).resolve().parent.parent
_QUEUE_READ_ONLY = {"QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp"}


class EmulatorProcess:
    """One moto server process (started by us; stopped by its process id)."""

    def __init__(self, service: str, *, metered: bool = True) -> None:
        self.service = service
        self.metered = metered
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def start(self) -> EmulatorProcess:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed arguments
            [sys.executable, "-m", "bench.emulators", self.service, *([] if self.metered else ["--unmetered"])],
            cwd=ROOT, env=env,
                                         stdout=subprocess.PIPE, text=True)
        assert self._process.stdout is not None
        line = self._process.stdout.readline().strip()  # the child prints its port once it listens
        if not line.isdigit():
            self.stop()
            raise RuntimeError(f"the {self.service} emulator did not start (said {line!r})")
        self.url = f"http://127.0.0.1:{line}"
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
            self._process = None

    def meters(self) -> dict[str, Any]:
        answer: dict[str, Any] = requests.get(f"{self.url}{METERS_PATH}", timeout=10).json()
        return answer

    def reset(self) -> None:
        requests.post(f"{self.url}/moto-api/reset", timeout=10).raise_for_status()


class SplitAws(LocalAws):
    """``LocalAws`` whose DynamoDB and SQS move to processes of their own once the stack is deployed."""

    def __init__(self, *args: Any, metered: bool = True, **kwargs: Any) -> None:
        """``metered=False``: no DynamoDB meters in the emulator (they read each written item twice more)."""
        super().__init__(*args, **kwargs)
        self.metered = metered
        self.emulators: dict[str, EmulatorProcess] = {}

    def start(self) -> SplitAws:
        super().start()
        for service in SERVICES:
            if service not in self.emulators:
                self.emulators[service] = EmulatorProcess(service, metered=self.metered).start()
        return self

    def stop(self) -> None:
        for emulator in self.emulators.values():
            emulator.stop()
        self.emulators.clear()
        self.service_endpoints.clear()
        super().stop()

    def reset(self) -> None:
        super().reset()
        for emulator in self.emulators.values():
            emulator.reset()

    def move_stack(self, stack: DeployedStack) -> None:
        """Copy the stack's tables and queues to the service processes and route those services there."""
        for logical_id, resource in stack.template["Resources"].items():
            if resource["Type"] == "AWS::DynamoDB::Table" and logical_id in stack.resources:
                _copy_table(self.client("dynamodb"), self._client_at("dynamodb"), stack.resources[logical_id])
        queues = [lid for lid, r in stack.template["Resources"].items()
                  if r["Type"] == "AWS::SQS::Queue" and lid in stack.resources]
        source, target = self.client("sqs"), self._client_at("sqs")
        attributes = {lid: source.get_queue_attributes(QueueUrl=stack.resources[lid], AttributeNames=["All"])
                      ["Attributes"] for lid in queues}
        for lid in sorted(queues, key=lambda q: "RedrivePolicy" in attributes[q]):  # dead-letter queues first
            name = stack.resources[lid].rsplit("/", 1)[-1]
            kept = {k: v for k, v in attributes[lid].items() if k not in _QUEUE_READ_ONLY}
            stack.resources[lid] = target.create_queue(QueueName=name, Attributes=kept)["QueueUrl"]
        with self._lock:
            self.service_endpoints.update({s: e.url for s, e in self.emulators.items()})
            for service in SERVICES:
                self._clients.pop(service, None)

    def meters(self) -> dict[str, Any]:
        found = self.emulators["dynamodb"].meters()
        return {"calls": {}, "units": {"read": {}, "write": {}}, **found}

    def sqs_requests(self) -> SqsCounts:
        """SQS requests by action (calls and billed) the SQS emulator process has answered so far."""
        return SqsCounts.from_json(self.emulators["sqs"].meters().get("requests", {}))

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds each emulator process has used so far."""
        return {service: float(e.meters()["cpu_s"]) for service, e in self.emulators.items()}

    def _client_at(self, service: str) -> Any:
        return self.session().client(service, endpoint_url=self.emulators[service].url)


def _copy_table(source: Any, target: Any, name: str) -> None:
    table = source.describe_table(TableName=name)["Table"]
    request: dict[str, Any] = {"TableName": name, "KeySchema": table["KeySchema"],
                               "AttributeDefinitions": table["AttributeDefinitions"],
                               "BillingMode": "PAY_PER_REQUEST"}
    indexes = [{"IndexName": i["IndexName"], "KeySchema": i["KeySchema"], "Projection": i["Projection"]}
               for i in table.get("GlobalSecondaryIndexes", [])]
    if indexes:
        request["GlobalSecondaryIndexes"] = indexes
    target.create_table(**request)
    ttl = source.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") == "ENABLED":
        target.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": ttl["AttributeName"]})


class RemoteMeters:
    """The DynamoDB meters of the emulator process, with the ``snapshot()`` of the in-process ones."""

    def __init__(self, aws: SplitAws, part: str) -> None:
        self._aws, self._part = aws, part

    def snapshot(self) -> Any:
        value = self._aws.meters()[self._part]
        return Counter(value) if self._part == "calls" else value


# -- the child process --------------------------------------------------------------------------

def _with_meters(app: Callable[..., Any], meters: Callable[[], dict[str, Any]]) -> Callable[..., Any]:
    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != METERS_PATH:
            return app(environ, start_response)  # type: ignore[no-any-return]
        body = json.dumps(meters()).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]

    return wsgi


def serve(service: str, metered: bool = True) -> None:
    import logging

    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    from bench import fast_dispatch, fast_dynamodb
    from bench.keepalive import KeepAliveServer
    from bench.probes import DynamoCounter
    from bench.units import DynamoUnits
    from localrun import fast_sqs
    from localrun.one_at_a_time import one_at_a_time

    logging.getLogger("moto").setLevel(logging.ERROR)
    fast_dispatch.install()
    fast_sqs.install()
    meters: Callable[[], dict[str, Any]] = lambda: {"cpu_s": time.process_time()}  # noqa: E731
    if service == "dynamodb":
        fast_dynamodb.install()
        DynamoHandler.call_action = one_at_a_time(DynamoHandler.call_action, threading.Lock())  # type: ignore[method-assign]
    if service == "dynamodb" and metered:
        calls, units = DynamoCounter().install(), DynamoUnits().install()
        meters = lambda: {"cpu_s": time.process_time(), "calls": dict(calls.snapshot()),  # noqa: E731
                          "units": units.snapshot()}
    if service == "sqs":
        sqs_requests = SqsRequests.installed()
        meters = lambda: {"cpu_s": time.process_time(), "requests": sqs_requests.snapshot().to_json()}  # noqa: E731
    app = _with_meters(DomainDispatcherApplication(create_backend_app), meters)
    server = KeepAliveServer(("127.0.0.1", 0), app)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve(sys.argv[1], metered="--unmetered" not in sys.argv[2:])
