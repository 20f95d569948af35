from datetime import UTC, datetime

import pytest

from ml_connector.marketo.payload import (
    COMPANIES,
    LEADS,
    MAX_BODY_BYTES,
    body_size,
    encode,
    sync_body,
    sync_envelope,
)
from ml_connector.sync.batching import chunk_by_limits, chunked, latest_per_key
from ml_connector.sync.messages import SyncMessage, content_hash
from ml_connector.sync.writer import job_id_for

COMPANY_ENVELOPE = sync_envelope(COMPANIES)
NORDIC = "Ærøskøbing Østfold Ålesund Smørbrødfabrikken Blåbærsyltetøy "
EMOJI = "🚀👩\u200d💻🇳🇴🧀 "
CJK = "中文有限公司東京株式会社서울 "


def long_text_records(count: int) -> list[dict[str, str]]:
    """Companies whose text is mostly non-ASCII: 2-byte Nordic letters, 4-byte emoji, 3-byte CJK."""
    return [{"externalCompanyId": f"nordic-{i}", "company": (NORDIC * 5)[:255], "billingCity": (EMOJI * 60)[:255],
             "billingStreet": (CJK * 20)[:255]} for i in range(count)]


def test_chunked_respects_size():
    chunks = list(chunked(list(range(701)), 300))
    assert [len(c) for c in chunks] == [300, 300, 101]
    assert sum(chunks, []) == list(range(701))


def test_chunk_by_limits_counts_records_and_bytes():
    records = [{"k": f"{i:03d}", "v": "x" * 100} for i in range(650)]  # all the same size
    by_count = list(chunk_by_limits(records, lambda r: r, envelope=COMPANY_ENVELOPE))
    assert [len(c) for c in by_count] == [300, 300, 50]
    hundred = len(sync_body(COMPANY_ENVELOPE, records[:100]))
    by_bytes = list(chunk_by_limits(records, lambda r: r, envelope=COMPANY_ENVELOPE, max_bytes=hundred))
    assert [len(c) for c in by_bytes] == [100] * 6 + [50]
    assert sum(by_bytes, []) == records


@pytest.mark.parametrize("envelope", [COMPANY_ENVELOPE, sync_envelope("vismaSupplier_c", action="updateOnly"),
                                      sync_envelope(LEADS, "vismaContactId")], ids=["company", "custom", "lead"])
def test_measured_size_is_the_length_of_the_body_sent(envelope):
    """The size the batching computes equals len() of the bytes the client sends, for text that JSON's
    ASCII escaping would have tripled (ø -> \\u00f8) or worse (an emoji -> two 6-byte escapes)."""
    for count in (0, 1, 2, 299):
        records = long_text_records(count)
        sent = sync_body(envelope, records)
        assert body_size(envelope, sum(len(encode(r)) for r in records), count) == len(sent)
        assert sent.decode("utf-8").count("\\u") == 0  # raw UTF-8, not escapes
    records = long_text_records(300)
    exact = len(sync_body(envelope, records))
    # A limit of exactly the sent length fits all 300 in one call; one byte less needs two.
    assert [len(c) for c in chunk_by_limits(records, lambda r: r, envelope=envelope, max_bytes=exact)] == [300]
    assert len(list(chunk_by_limits(records, lambda r: r, envelope=envelope, max_bytes=exact - 1))) == 2


def test_every_chunk_of_long_unicode_records_is_sent_within_the_limit():
    records = long_text_records(1200)
    chunks = list(chunk_by_limits(records, lambda r: r, envelope=COMPANY_ENVELOPE, max_records=1200))  # bytes bind
    sizes = [len(sync_body(COMPANY_ENVELOPE, c)) for c in chunks]
    assert all(size <= MAX_BODY_BYTES for size in sizes) and sum(chunks, []) == records
    # Chunks are full: adding the next record would have broken the limit.
    assert all(len(sync_body(COMPANY_ENVELOPE, c + [records[0]])) > MAX_BODY_BYTES for c in chunks[:-1])


def test_record_over_the_byte_limit_goes_alone():
    """Not an exception that would fail the whole batch: the client reports it skipped (HTTP 413)."""
    records = [{"v": "a"}, {"v": "ø" * 200}, {"v": "b"}]
    chunks = list(chunk_by_limits(records, lambda r: r, envelope=COMPANY_ENVELOPE, max_bytes=200))
    assert chunks == [[{"v": "a"}], [{"v": "ø" * 200}], [{"v": "b"}]]


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
