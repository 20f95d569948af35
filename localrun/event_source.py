"""Emulates Lambda's SQS event source mapping: poll the queue, invoke the handler, delete or release.

Settings come from the function's SQS event in template.yaml (queue, BatchSize,
FunctionResponseTypes). Semantics follow Lambda: a batch closes when full, when the queue is empty
(or the batching window elapses) or near the 6 MB payload limit; with ReportBatchItemFailures only
the messages listed in ``batchItemFailures`` are kept (an invalid list fails the whole batch); a
handler exception keeps every message of the batch. Kept messages are made visible again at once
(Lambda waits for the visibility timeout), so a drain retries them until SQS moves them to the
dead-letter queue after maxReceiveCount receives; with ``keep_invisible`` they are left in flight, as
Lambda leaves them, and come back after the queue's visibility timeout.
"""

from __future__ import annotations

import base64
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from localrun.aws import DeployedStack
from localrun.lambda_runtime import invoke

SQS_RECEIVE_MAX = 10  # SQS returns at most 10 messages per ReceiveMessage
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
_RECORD_ATTRIBUTES = ("ApproximateReceiveCount", "SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp",
                      "MessageGroupId", "MessageDeduplicationId", "SequenceNumber", "AWSTraceHeader")
_WINDOW_POLL_S = 0.02


class DrainStats(BaseModel):
    batches: int = 0
    messages: int = 0
    succeeded: int = 0
    failed: int = 0
    handler_errors: int = 0
    batch_sizes: list[int] = Field(default_factory=list)
    results: list[Any] = Field(default_factory=list)  # handler return values, one per batch that returned
    errors: list[str] = Field(default_factory=list)  # "ExceptionType: message", one per batch that raised


@dataclass
class DeliveryChaos:
    """What standard SQS is allowed to do and the plain drain never does: deliver a message more than once
    (at-least-once) and out of order. Held-back messages stay in flight (received, not deleted) and arrive
    in a later batch, behind newer messages; a duplicated batch is delivered again after it was handled."""

    rng: random.Random
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    duplicated_batches: int = 0
    duplicated_messages: int = 0
    held_back: int = 0
    duplicate_errors: list[str] = field(default_factory=list)
    _held: list[dict[str, Any]] = field(default_factory=list)

    def arrange(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """This batch as delivered: shuffled, with some messages held for later and earlier held ones added."""
        released, self._held = self._held, []
        if len(messages) > 1 and self.rng.random() < self.reorder_rate:
            self.rng.shuffle(messages)
            cut = self.rng.randint(1, len(messages) - 1)
            messages, self._held = messages[:cut], messages[cut:]
            self.held_back += len(self._held)
        return messages + released

    def release(self) -> list[dict[str, Any]]:
        """Messages still held when the queue runs dry."""
        released, self._held = self._held, []
        return released

    def duplicate(self) -> bool:
        return self.rng.random() < self.duplicate_rate


class SqsEventSource:
    def __init__(self, stack: DeployedStack, function_logical_id: str = "WriterFunction", *,
                 env: dict[str, str] | None = None, batch_size: int | None = None,
                 batching_window_s: float = 0.0, template_path: str | Path | None = None,
                 chaos: DeliveryChaos | None = None, keep_invisible: bool = False,
                 timeout_s: float | None = None) -> None:
        mapping = stack.event_source_mapping(function_logical_id)
        self.stack = stack
        self.function_logical_id = function_logical_id
        self.env = dict(env or {})
        self.template_path = template_path
        self.queue_arn: str = mapping["EventSourceArn"]
        self.queue_url = stack.resources[stack.logical_id_for_arn(self.queue_arn, "AWS::SQS::Queue")]
        self.batch_size = int(batch_size if batch_size is not None else mapping.get("BatchSize", 10))
        # Locally the window defaults to 0: waiting 20 s for more messages only slows runs down.
        self.batching_window_s = batching_window_s
        self.report_item_failures = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        self._sqs = stack.aws.client("sqs")
        self.chaos = chaos
        self.keep_invisible = keep_invisible
        self.timeout_s = timeout_s  # None: the template's Timeout (a time-scaled bench stretches it)

    def drain(self, *, max_batches: int | None = None, idle_polls: int = 1,
              on_batch: Callable[[DrainStats], None] | None = None) -> DrainStats:
        """Invoke the handler batch after batch until ``idle_polls`` polls in a row find the queue empty;
        ``on_batch`` sees the running totals after each batch (progress display)."""
        stats = DrainStats()
        idle = 0
        while max_batches is None or stats.batches < max_batches:
            messages = self._collect()
            if self.chaos is not None:
                messages = self.chaos.arrange(messages) if messages else self.chaos.release()
            if not messages:
                idle += 1
                if idle >= idle_polls:
                    break
                continue
            idle = 0
            self._deliver(messages, stats)
            if on_batch is not None:
                on_batch(stats)
        return stats

    # -- one batch --------------------------------------------------------------------------
    def _collect(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        size = 0
        window_ends = time.monotonic() + self.batching_window_s
        while len(messages) < self.batch_size and size < MAX_PAYLOAD_BYTES - 262_144:
            received = self._sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=min(SQS_RECEIVE_MAX, self.batch_size - len(messages)),
                MessageSystemAttributeNames=["All"], MessageAttributeNames=["All"], WaitTimeSeconds=0,
            ).get("Messages", [])
            messages.extend(received)
            size += sum(len(m["Body"].encode()) for m in received)
            if not received:
                if time.monotonic() >= window_ends:
                    break
                time.sleep(_WINDOW_POLL_S)
        return messages

    def _deliver(self, messages: list[dict[str, Any]], stats: DrainStats) -> None:
        stats.batches += 1
        stats.messages += len(messages)
        stats.batch_sizes.append(len(messages))
        event = {"Records": [self._record(m) for m in messages]}
        try:
            result = invoke(self.stack, self.function_logical_id, event, env=self.env,
                            template_path=self.template_path, timeout_s=self.timeout_s)
        except Exception as exc:  # a failed invocation: Lambda keeps the whole batch for a retry
            stats.handler_errors += 1
            stats.errors.append(f"{type(exc).__name__}: {exc}")
            failed_ids = {m["MessageId"] for m in messages}
        else:
            stats.results.append(result)
            failed_ids = self._failed_ids(result, messages)
        done = [m for m in messages if m["MessageId"] not in failed_ids]
        kept = [m for m in messages if m["MessageId"] in failed_ids]
        self._batched("delete_message_batch", done, lambda m: {})
        if not self.keep_invisible:
            self._batched("change_message_visibility_batch", kept, lambda m: {"VisibilityTimeout": 0})
        stats.succeeded += len(done)
        stats.failed += len(kept)
        if self.chaos is not None and done and self.chaos.duplicate():
            self._deliver_again(done)

    def _deliver_again(self, messages: list[dict[str, Any]]) -> None:
        """SQS delivers already-handled messages once more; the outcome does not matter to the queue (they
        were deleted), only what the handler does with them."""
        assert self.chaos is not None
        self.chaos.duplicated_batches += 1
        self.chaos.duplicated_messages += len(messages)
        event = {"Records": [self._record(m) for m in messages]}
        try:
            invoke(self.stack, self.function_logical_id, event, env=self.env, template_path=self.template_path)
        except Exception as exc:  # noqa: BLE001 - a failed duplicate changes nothing: its messages are gone
            self.chaos.duplicate_errors.append(f"{type(exc).__name__}: {exc}")

    def _failed_ids(self, result: Any, messages: list[dict[str, Any]]) -> set[str]:
        """Message ids the handler reported as failed; an unusable report fails the batch, as in Lambda."""
        if not self.report_item_failures or not isinstance(result, dict) or result.get("batchItemFailures") is None:
            return set()
        all_ids = {m["MessageId"] for m in messages}
        failures = result["batchItemFailures"]
        if not isinstance(failures, list):
            return all_ids
        reported = {f.get("itemIdentifier") if isinstance(f, dict) else None for f in failures}
        if None in reported or "" in reported or not reported <= all_ids:
            return all_ids
        return {str(i) for i in reported}

    def _batched(self, operation: str, messages: list[dict[str, Any]], extra: Any) -> None:
        call = getattr(self._sqs, operation)
        for start in range(0, len(messages), SQS_RECEIVE_MAX):
            chunk = messages[start:start + SQS_RECEIVE_MAX]
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], **extra(m)} for i, m in enumerate(chunk)]
            response = call(QueueUrl=self.queue_url, Entries=entries)
            if response.get("Failed"):
                raise RuntimeError(f"SQS {operation} failed for {response['Failed']}")

    def _record(self, message: dict[str, Any]) -> dict[str, Any]:
        """An SQS message in the shape Lambda's event source delivers it."""
        attributes = message.get("Attributes", {})
        record: dict[str, Any] = {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": {k: attributes[k] for k in _RECORD_ATTRIBUTES if k in attributes},
            "messageAttributes": {name: _message_attribute(value)
                                  for name, value in message.get("MessageAttributes", {}).items()},
            "md5OfBody": message["MD5OfBody"],
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self.stack.aws.region,
        }
        if "MD5OfMessageAttributes" in message:
            record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
        return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value["DataType"]}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return converted
