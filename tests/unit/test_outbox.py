"""SendMessageBatch limits: ten messages and 256 KiB in all per call, 256 KiB per message."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ml_connector.sync.messages import SyncMessage
from ml_connector.sync.outbox import SQS_MAX_BYTES, EnqueueError, SqsOutbox, _batches, message_body


def message(internal_id: int, street_bytes: int) -> SyncMessage:
    return SyncMessage.build(connection="c1", entity="customer", internal_id=internal_id, number=str(internal_id),
                             marketo_object="companies", dedupe_field="externalCompanyId", key=f"k-{internal_id}",
                             modified_at=datetime(2026, 1, 1, tzinfo=UTC), visma_timestamp="ts",
                             fields={"billingStreet": "ø" * (street_bytes // 2)})


def test_batches_hold_at_most_ten_messages_and_256_kib():
    messages = [message(i, 60_000) for i in range(9)] + [message(100 + i, 100) for i in range(25)]
    batches = _batches([message_body(m) for m in messages])
    assert [body for batch in batches for body in batch] == [message_body(m) for m in messages]  # all, in order
    for batch in batches:
        assert len(batch) <= 10 and sum(len(body.encode()) for body in batch) <= SQS_MAX_BYTES
    assert len(batches[0]) == 4  # four 60 KB messages fill a batch by size, long before ten


def test_a_message_over_the_limit_is_refused_before_any_call():
    outbox = SqsOutbox("https://sqs.invalid/queue", client=object())
    with pytest.raises(EnqueueError, match="262144-byte limit"):
        outbox.send([message(1, SQS_MAX_BYTES)])
