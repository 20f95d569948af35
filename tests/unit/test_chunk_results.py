"""The idempotency record of a chunk: stored without empty fields (it is billed per KB on every chunk) and
read back to the same results."""

from __future__ import annotations

import json

from ml_connector.marketo.models import SyncResult
from ml_connector.sync.writer import ChunkResults
from ml_connector.usecases.write_batch import CompactResults


def test_chunk_results_round_trip_at_about_half_the_size():
    results = ChunkResults(results=[
        *(SyncResult(seq=i, status="created", id=1000 + i) for i in range(299)),
        SyncResult.model_validate({"seq": 299, "status": "skipped", "reasons": [{"code": "1003", "message": "x"}]})])
    stored = json.dumps(CompactResults().to_dict(results))
    assert CompactResults().from_dict(json.loads(stored)) == results
    assert len(stored) < 0.6 * len(json.dumps(results.model_dump(mode="json")))
