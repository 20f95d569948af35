from datetime import UTC, datetime

import pytest

from ml_connector.sync.batching import chunk_by_limits, chunked, json_size, latest_per_key
from ml_connector.sync.messages import SyncMessage, content_hash
from ml_connector.sync.writer import job_id_for


def test_chunked_respects_size():
    chunks = list(chunked(list(range(701)), 300))
    assert [len(c) for c in chunks] == [300, 300, 101]
    assert sum(chunks, []) == list(range(701))


def test_chunk_by_limits_counts_records_and_bytes():
    records = [{"k": str(i), "v": "x" * 100} for i in range(650)]
    by_count = list(chunk_by_limits(records, lambda r: r))
    assert [len(c) for c in by_count] == [300, 300, 50]
    one = json_size(records[0])
    by_bytes = list(chunk_by_limits(records, lambda r: r, max_bytes=one * 100))
    assert all(len(c) <= 100 for c in by_bytes)
    assert sum(len(c) for c in by_bytes) == 650


def test_record_over_the_byte_limit_is_an_error():
    with pytest.raises(ValueError, match="over the"):
        list(chunk_by_limits([{"v": "x" * 50}], lambda r: r, max_bytes=10))


def _message(key: str, ts: str, minute: int, name: str = "A") -> SyncMessage:
    return SyncMessage.build(connection="c", entity="customer", internal_id=int(key), number=key,
                             marketo_object="companies", dedupe_field="externalCompanyId", key=key,
                             modified_at=datetime(2025, 1, 1, 0, minute, tzinfo=UTC), visma_timestamp=ts,
                             fields={"company": name})


def test_latest_per_key_keeps_newest_in_any_order():
    old, new, other = _message("1", "a", 1), _message("1", "b", 2), _message("2", "a", 1)
    for order in ([old, new, other], [new, old, other]):
        kept, superseded = latest_per_key(order, key=lambda m: m.key, newer=lambda a, b: a.newer_than(b))
        assert sorted(m.visma_timestamp + m.key for m in kept) == ["a2", "b1"]
        assert superseded == [old]


def test_job_id_is_deterministic_and_order_independent():
    a, b = _message("1", "a", 1), _message("2", "a", 1)
    assert job_id_for("c", "companies", [a, b]) == job_id_for("c", "companies", [b, a])
    assert job_id_for("c", "companies", [a, b]) != job_id_for("c", "companies", [a, _message("2", "b", 2)])
    assert job_id_for("c", "companies", [a]) != job_id_for("d", "companies", [a])


def test_content_hash_ignores_key_order():
    assert content_hash({"a": 1, "b": "x"}) == content_hash({"b": "x", "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_packed_messages_round_trip_and_compress():
    from ml_connector.sync.messages import pack_messages, unpack_messages

    messages = [_message(str(i), "ts", i % 60, name="Nordlys Maskin AS " * 5) for i in range(300)]
    packed = pack_messages(messages)
    assert unpack_messages(packed) == messages
    assert len(packed) < sum(len(m.model_dump_json()) for m in messages) / 5


def test_version_follows_the_rowversion_not_the_clock():
    import base64

    from ml_connector.sync.messages import version_key

    early_clock = datetime(2026, 1, 1, tzinfo=UTC)
    late_clock = datetime(2026, 1, 2, tzinfo=UTC)
    older_row = base64.b64encode((500).to_bytes(8, "big")).decode()
    newer_row = base64.b64encode((501).to_bytes(8, "big")).decode()
    # Visma's clock stepped back between two changes: the rowversion still orders them.
    assert version_key(newer_row, early_clock) > version_key(older_row, late_clock)
    # Without a rowversion, the modification time decides.
    assert version_key("", late_clock) > version_key("", early_clock)


@pytest.mark.parametrize(("now", "reset"), [
    # 12:00 AM CST is 06:00 UTC; a minute is added for clock differences.
    (datetime(2026, 11, 25, 5, 59, tzinfo=UTC), datetime(2026, 11, 25, 6, 1, tzinfo=UTC)),
    (datetime(2026, 11, 25, 6, 30, tzinfo=UTC), datetime(2026, 11, 26, 6, 1, tzinfo=UTC)),
    (datetime(2026, 12, 31, 23, 0, tzinfo=UTC), datetime(2027, 1, 1, 6, 1, tzinfo=UTC)),
])
def test_marketo_quota_resets_at_midnight_cst(now, reset):
    from ml_connector.sync.deferred_chunks import next_quota_reset

    assert next_quota_reset(now) == reset
