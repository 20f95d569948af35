"""A chunk's Marketo call under Powertools idempotency (on moto): a replayed job, in a later invocation, returns the
stored results without calling Marketo again; another job calls it. Idempotency is given the job's ID alone (not
its 300 records), and its key is the hash of that ID, as it was when it was given the whole job: records stored
before keep answering replays."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aws_lambda_powertools.utilities.idempotency.persistence import base as persistence_base

from localrun.aws import LocalAws
from ml_connector.marketo.models import SyncResult
from ml_connector.sync.writer import ChunkJob
from ml_connector.usecases.write_batch import IdempotencyConfig, idempotent_write


class CountingMarketo:
    munchkin_id = "123-ABC-456"

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def sync_records(self, target: str, records: list[dict[str, Any]], dedupe_field: str) -> list[SyncResult]:
        self.calls.append(records)
        return [SyncResult(seq=i, status="created", id=1000 + len(self.calls) * 100 + i) for i in range(len(records))]


@pytest.fixture(scope="module")
def table() -> Iterator[tuple[LocalAws, str]]:
    with LocalAws() as aws:
        aws.client("dynamodb").create_table(
            TableName="idempotency", BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        yield aws, "idempotency"


def job(job_id: str, records: int = 300) -> ChunkJob:
    return ChunkJob(job_id=job_id, connection="c1", marketo_object="companies", dedupe_field="externalCompanyId",
                    records=[{"externalCompanyId": f"k{i}", "company": f"Company {i}"} for i in range(records)])


def writer(table: tuple[LocalAws, str], marketo: CountingMarketo) -> Any:
    """What one invocation builds (a new decorator each time, as ``write_batch`` does)."""
    aws, name = table
    config = IdempotencyConfig(event_key_jmespath="job_id", raise_on_no_idempotency_key=True,
                               expires_after_seconds=3600)
    return idempotent_write(name, config, lambda _connection: marketo, client=aws.client("dynamodb"))


def test_a_replayed_job_returns_the_stored_results_without_a_marketo_call(table):
    marketo = CountingMarketo()
    first = writer(table, marketo)(job("job-a"))
    replayed = writer(table, marketo)(job("job-a"))  # a later invocation, the same chunk redelivered
    assert len(marketo.calls) == 1 and len(marketo.calls[0]) == 300
    assert replayed == first and len(first.results) == 300

    writer(table, marketo)(job("job-b", records=2))
    assert len(marketo.calls) == 2 and len(marketo.calls[1]) == 2


def test_the_idempotency_key_is_the_hash_of_the_job_id(table):
    aws, name = table
    writer(table, CountingMarketo())(job("job-key"))
    ids = [i["id"]["S"] for i in aws.client("dynamodb").scan(TableName=name)["Items"]]
    digest = hashlib.md5(json.dumps("job-key").encode()).hexdigest()  # noqa: S324 - Powertools' default hash
    # The key the writer stored when idempotency was given the whole job (read from a run of that code).
    assert "test-func.ml_connector.usecases.write_batch.idempotent_write.<locals>.write_job#" + digest in ids


def test_the_first_chunks_of_an_invocation_may_start_at_once(table, monkeypatch):
    """Chunks run in threads. Powertools configures its store on the first call and marks it configured before it
    compiles the key expression; a thread starting meanwhile found none and its chunk failed (seen in the latency
    bench). The library's compile is slowed here so that every start falls in that window."""
    compile_slowly = persistence_base.jmespath.compile

    def slow(expression: str) -> Any:
        time.sleep(0.2)
        return compile_slowly(expression)

    monkeypatch.setattr(persistence_base.jmespath, "compile", slow)
    marketo = CountingMarketo()
    write = writer(table, marketo)
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(write, [job(f"at-once-{i}", 10) for i in range(3)]))
    assert len(marketo.calls) == 3 and all(len(r.results) == 10 for r in results)
