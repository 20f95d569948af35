"""localrun.fast_sqs changes moto's speed, not its behaviour: one script, run on plain and patched moto, sees the same.

Each side runs in a fresh interpreter (this file as a script), because the patch is process-wide and the
local stack of the other tests installs it in this one. The script does what the project and Lambda's event
source do with the sync queue: batch sends with and without message attributes, receives with every system
and message attribute, batch deletes (twice), batch visibility changes, a visibility timeout that runs out,
receive counts up to the redrive to the dead-letter queue, the CLI's redrive back, queue counts, purge.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from localrun import fast_sqs
from localrun.aws import LocalAws

REGION = "eu-north-1"
ROOT = Path(__file__).resolve().parents[2]
# Differ from run to run (times, random ids): compared only for presence.
_VOLATILE = {"SentTimestamp", "ApproximateFirstReceiveTimestamp", "CreatedTimestamp", "LastModifiedTimestamp",
             "SenderId"}


def _client() -> Any:
    import boto3

    return boto3.client("sqs", region_name=REGION, aws_access_key_id="testing", aws_secret_access_key="testing")


def _seen(messages: list[dict[str, Any]]) -> list[Any]:
    """What a consumer reads from a message, minus values that differ between runs."""
    out = []
    for m in messages:
        attributes = m.get("Attributes", {})
        out.append({
            "body": m["Body"], "md5": m["MD5OfBody"], "md5_attributes": m.get("MD5OfMessageAttributes"),
            "message_attributes": {k: {f: (v[f].decode("latin-1") if isinstance(v[f], bytes) else v[f])
                                       for f in sorted(v)} for k, v in m.get("MessageAttributes", {}).items()},
            "attributes": {k: ("<set>" if k in _VOLATILE else v) for k, v in sorted(attributes.items())},
        })
    return out


def _receive(sqs: Any, url: str, n: int = 10, visibility: int | None = None) -> list[dict[str, Any]]:
    extra = {} if visibility is None else {"VisibilityTimeout": visibility}
    return list(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=n, MessageSystemAttributeNames=["All"],
                                    MessageAttributeNames=["All"], WaitTimeSeconds=0, **extra)
                .get("Messages", []))


def _error(call: Any) -> str:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def _queue(sqs: Any, url: str) -> dict[str, str]:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    return {k: ("<set>" if k in _VOLATILE else v) for k, v in sorted(attributes.items())}


def _batch_result(response: dict[str, Any]) -> list[Any]:
    return [sorted(e["Id"] for e in response.get("Successful", [])),
            sorted((e["Id"], e["Code"]) for e in response.get("Failed", []))]


def _entries(messages: list[dict[str, Any]], **extra: Any) -> list[dict[str, Any]]:
    return [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], **extra} for i, m in enumerate(messages)]


def script() -> list[Any]:
    """Everything recorded as (label, what the client saw)."""
    sqs = _client()
    trace: list[Any] = []
    dlq = sqs.create_queue(QueueName="dlq", Attributes={"MessageRetentionPeriod": "1209600",
                                                         "KmsMasterKeyId": "alias/test"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName="work", Attributes={  # the template's sync queue, with maxReceiveCount 2
        "VisibilityTimeout": "720", "MessageRetentionPeriod": "345600", "KmsMasterKeyId": "alias/test",
        "KmsDataKeyReusePeriodSeconds": "3600",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2})})["QueueUrl"]
    # The outbox sends plain bodies; messages with attributes exercise the event source's conversion.
    for start in range(0, 30, 10):
        entries: list[dict[str, Any]] = []
        for i in range(10):
            entry: dict[str, Any] = {"Id": str(i), "MessageBody": json.dumps({"n": start + i})}
            if i % 3 == 0:
                entry["MessageAttributes"] = {
                    "entity": {"DataType": "String", "StringValue": "customer"},
                    "seq": {"DataType": "Number", "StringValue": str(start + i)},
                    "blob": {"DataType": "Binary", "BinaryValue": bytes([start + i, 0, 255])}}
            entries.append(entry)
        trace.append(("send batch", _batch_result(sqs.send_message_batch(QueueUrl=url, Entries=entries))))
    trace.append(("queue after sends", _queue(sqs, url)))

    first = _receive(sqs, url)
    trace.append(("first receive", _seen(first)))
    trace.append(("queue after receive", _queue(sqs, url)))
    # Lambda's event source: delete the handled ones (a second delete is a no-op), release the failed ones.
    done, kept = first[:5], first[5:]
    trace.append(("delete", _batch_result(sqs.delete_message_batch(QueueUrl=url, Entries=_entries(done)))))
    trace.append(("delete again", _batch_result(sqs.delete_message_batch(QueueUrl=url, Entries=_entries(done)))))
    trace.append(("delete unknown", _error(lambda: sqs.delete_message(QueueUrl=url, ReceiptHandle="nope"))))
    trace.append(("batch with unknown", _batch_result(sqs.delete_message_batch(
        QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": "nope"}]))))
    trace.append(("second receive skips in-flight", _seen(_receive(sqs, url))))
    trace.append(("release", _batch_result(sqs.change_message_visibility_batch(
        QueueUrl=url, Entries=_entries(kept, VisibilityTimeout=0)))))
    trace.append(("visibility of deleted", _error(lambda: sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=done[0]["ReceiptHandle"], VisibilityTimeout=0))))
    trace.append(("visibility beyond 12 h", _error(lambda: sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=kept[0]["ReceiptHandle"], VisibilityTimeout=43201))))
    trace.append(("queue after release", _queue(sqs, url)))

    # Visibility timeouts that run out, the queue's own (1 s) and one given on receive: the messages come
    # back by themselves, their receive counts one higher.
    short = sqs.create_queue(QueueName="short", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
    sqs.send_message_batch(QueueUrl=short, Entries=[{"Id": str(i), "MessageBody": f"s{i}"} for i in range(6)])
    trace.append(("queue timeout", _seen(_receive(sqs, short, n=3))))
    trace.append(("receive timeout", _seen(_receive(sqs, short, n=3, visibility=1))))
    trace.append(("hidden meanwhile", _receive(sqs, short), _queue(sqs, short)))
    time.sleep(1.5)
    trace.append(("back after timeout", _seen(_receive(sqs, short, visibility=0))))

    # Visibility 0: everything comes back at once; the second receive of a message is its last before the DLQ.
    rounds = [sorted(json.dumps(s, sort_keys=True) for s in _seen(_receive(sqs, url, visibility=0)))
              for _ in range(8)]
    trace.append(("rounds", rounds))
    trace.append(("queue drained", _queue(sqs, url)))
    trace.append(("dlq", _queue(sqs, dlq)))
    in_dlq = _receive(sqs, dlq, visibility=0)
    trace.append(("dlq receive", sorted(json.dumps(s, sort_keys=True) for s in _seen(in_dlq))))
    old = kept[0]["ReceiptHandle"]
    trace.append(("old handle in dlq", _error(lambda: sqs.delete_message(QueueUrl=dlq, ReceiptHandle=old))))

    # `ml-connector redrive`: receive from the DLQ, send to the queue, delete from the DLQ.
    moved = _receive(sqs, dlq, visibility=60)
    sent = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": m["Body"]}
                                                         for i, m in enumerate(moved)])
    trace.append(("redrive send", _batch_result(sent)))
    trace.append(("redrive delete", _batch_result(sqs.delete_message_batch(QueueUrl=dlq, Entries=_entries(moved)))))
    trace.append(("after redrive", _queue(sqs, url), _queue(sqs, dlq)))
    trace.append(("redriven arrive fresh", _seen(_receive(sqs, url, visibility=0))))
    sqs.purge_queue(QueueUrl=dlq)
    trace.append(("after purge", _queue(sqs, dlq), _receive(sqs, dlq)))
    return trace


def _run_in_fresh_process(patched: bool) -> Any:
    done = subprocess.run([sys.executable, __file__, "fast" if patched else "plain"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_patched_moto_behaves_like_moto() -> None:
    plain = _run_in_fresh_process(patched=False)
    fast = _run_in_fresh_process(patched=True)
    assert fast["installed"] is True and plain["installed"] is False
    assert fast["trace"] == plain["trace"]
    # And the script did exercise what it claims to.
    seen = {entry[0]: entry[1:] for entry in plain["trace"]}
    assert len(seen["first receive"][0]) == 10
    assert any(m["message_attributes"] for m in seen["first receive"][0])
    assert seen["delete again"][0] == [[str(i) for i in range(5)], []]
    assert seen["delete unknown"] == ["ReceiptHandleIsInvalid"]
    assert seen["batch with unknown"][0][1], "an unknown handle fails its entry"
    assert seen["hidden meanwhile"][0] == []
    assert [m["attributes"]["ApproximateReceiveCount"] for m in seen["back after timeout"][0]] == ["2"] * 6
    assert seen["dlq"][0]["ApproximateNumberOfMessages"] != "0", "some messages reached the dead-letter queue"
    assert seen["redriven arrive fresh"][0][0]["attributes"]["ApproximateReceiveCount"] == "1"


def test_the_local_stack_uses_it(aws: LocalAws) -> None:
    assert fast_sqs.installed()
    sqs = aws.client("sqs")
    aws.reset()
    url = sqs.create_queue(QueueName="q")["QueueUrl"]
    sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": str(i)} for i in range(10)])
    got = _receive(sqs, url)
    assert [m["Body"] for m in got] == [str(i) for i in range(10)]
    sqs.delete_message_batch(QueueUrl=url, Entries=_entries(got))
    counts = _queue(sqs, url)
    assert counts["ApproximateNumberOfMessages"] == counts["ApproximateNumberOfMessagesNotVisible"] == "0"


if __name__ == "__main__":
    if sys.argv[1] == "fast":
        fast_sqs.install()
    from moto import mock_aws

    with mock_aws():
        print(json.dumps({"installed": fast_sqs.installed(), "trace": script()}))
