"""The idempotency record of a chunk: stored small (it is written for every chunk, billed per started KB) and
read back to the same results."""

from __future__ import annotations

import json
import random

from ml_connector.marketo.models import SyncResult
from ml_connector.sync.writer import ChunkResults
from ml_connector.usecases.write_batch import CompactResults


def _stored(results: ChunkResults) -> str:
    return json.dumps(CompactResults().to_dict(results))  # what Powertools writes in the record's data attribute


def test_chunk_results_round_trip_in_under_two_kb_for_300_records():
    rng = random.Random(1)
    ids = rng.sample(range(1, 1_000_000), 299)  # updates of records Marketo created at any time
    results = ChunkResults(results=[
        *(SyncResult(seq=i, status=rng.choice(["created", "updated"]), id=ids[i]) for i in range(299)),
        SyncResult.model_validate({"seq": 299, "status": "skipped", "reasons": [{"code": "1003", "message": "x"}]})])
    stored = _stored(results)
    assert CompactResults().from_dict(json.loads(stored)) == results
    # With the record's key and status fields the item stays within 2 write units (it was ~15 KB of JSON).
    assert len(stored) < 1800, len(stored)


def test_a_full_loads_results_take_a_few_hundred_bytes():
    """Marketo numbers the records it creates in sequence."""
    results = ChunkResults(results=[SyncResult(seq=i, status="created", id=5000 + i) for i in range(300)])
    stored = _stored(results)
    assert CompactResults().from_dict(json.loads(stored)) == results
    assert len(stored) < 400, len(stored)


def test_unusual_results_round_trip_whole():
    results = ChunkResults(results=[
        SyncResult(seq=1, status="updated", marketoGUID="g-1"),  # out of position
        SyncResult.model_validate({"seq": 0, "status": "created", "id": "7", "extra": None}),  # a field we do not know
        SyncResult(seq=2, status="created", id=9), SyncResult(seq=3, status="updated", id=4),
        SyncResult(seq=4, status="updated", id="g")])
    assert CompactResults().from_dict(json.loads(_stored(results))) == results


def test_a_record_stored_before_the_compact_form_still_reads():
    results = ChunkResults(results=[SyncResult(seq=0, status="created", id=5)])
    assert CompactResults().from_dict(results.model_dump(mode="json", exclude_defaults=True)) == results
