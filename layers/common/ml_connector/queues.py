"""The sync queue and its dead-letter queue, as the operator actions see them."""

from __future__ import annotations

import json
from typing import Any

import boto3

from ml_connector.config import ConfigError, RuntimeSettings, is_loopback

DEPTH_ATTRIBUTES = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]


class OperationError(RuntimeError):
    """An operator action cannot be carried out; the message says why."""


class SyncQueues:
    def __init__(self, settings: RuntimeSettings, *, sqs: Any | None = None) -> None:
        if not settings.sync_queue_url:
            raise ConfigError("SYNC_QUEUE_URL: required for this command")
        self.url = settings.sync_queue_url
        self.sqs = sqs or boto3.client("sqs")

    def depth(self, url: str | None = None) -> int:
        """Visible plus in-flight messages."""
        attrs = self.sqs.get_queue_attributes(QueueUrl=url or self.url, AttributeNames=DEPTH_ATTRIBUTES)["Attributes"]
        return sum(int(attrs.get(name, 0)) for name in DEPTH_ATTRIBUTES)

    def arn(self, url: str | None = None) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=url or self.url, AttributeNames=["QueueArn"])
        return str(attrs["Attributes"]["QueueArn"])

    @property
    def emulated(self) -> bool:
        """A local emulator (moto) on a loopback endpoint: it lacks some SQS APIs (message-move tasks)."""
        return is_loopback(str(self.sqs.meta.endpoint_url))

    def dead_letter_url(self) -> str:
        attrs = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["RedrivePolicy"])
        policy = attrs.get("Attributes", {}).get("RedrivePolicy")
        if not policy:
            raise OperationError("the sync queue has no dead-letter queue configured")
        name = json.loads(policy)["deadLetterTargetArn"].rsplit(":", 1)[-1]
        return str(self.sqs.get_queue_url(QueueName=name)["QueueUrl"])

    def receive(self, limit: int, visibility_timeout: int, url: str | None = None) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while len(messages) < limit:
            got = self.sqs.receive_message(
                QueueUrl=url or self.url, MaxNumberOfMessages=min(10, limit - len(messages)), WaitTimeSeconds=0,
                VisibilityTimeout=visibility_timeout,
            ).get("Messages", [])
            if not got:
                break
            messages.extend(got)
        return messages

    def delete(self, messages: list[dict[str, Any]], url: str | None = None) -> None:
        for start in range(0, len(messages), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(messages[start : start + 10])]
            self.sqs.delete_message_batch(QueueUrl=url or self.url, Entries=entries)
