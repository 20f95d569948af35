"""The walking skeleton end to end: schedule -> poller -> SQS -> writer -> Marketo, through real HTTP.

moto's server is built from template.yaml; the sandboxes are real HTTP servers; the handlers are the
ones SAM deploys, invoked in-process with events/*.json and a Lambda context.
"""

from __future__ import annotations

import json
import math

import pytest

from localrun.environment import ROOT
from localrun.lambda_runtime import invoke

pytestmark = pytest.mark.integration

CUSTOMERS, SUPPLIERS, EDITS = 400, 100, 50


@pytest.fixture(scope="module")
def env(local_stack):
    return local_stack(seed=11, customers=CUSTOMERS, suppliers=SUPPLIERS)


@pytest.fixture(scope="module")
def cycles(env):
    first = env.cycle("full load")
    first_check = env.verify()
    edited = env.visma.store.edit_random(EDITS, rng_seed=99)
    second = env.cycle("changes")
    second_check = env.verify()
    third = env.cycle("no-op")
    return {"first": first, "first_check": first_check, "edited": edited, "second": second,
            "second_check": second_check, "third": third}


def test_full_load_moves_every_record_once(cycles):
    first = cycles["first"]
    total = CUSTOMERS + SUPPLIERS
    assert first.records_read == total
    assert first.messages_sent == total
    assert first.created == total
    assert first.updated == 0 and first.skipped == 0
    assert cycles["first_check"].ok, cycles["first_check"].summary()


def test_full_load_uses_few_marketo_calls(cycles):
    first = cycles["first"]
    # One sync call per SQS batch of up to 300 records; SQS batches may be split when the queue runs dry.
    assert first.marketo_calls <= math.ceil((CUSTOMERS + SUPPLIERS) / 300) + 2


def test_second_cycle_moves_only_the_edits(cycles):
    second = cycles["second"]
    assert len(cycles["edited"]) == EDITS
    assert second.messages_sent == EDITS
    assert second.updated == EDITS
    assert second.created == 0
    assert cycles["second_check"].ok, cycles["second_check"].summary()


def test_no_op_cycle_makes_no_marketo_call(cycles):
    third = cycles["third"]
    assert third.messages_sent == 0
    assert third.marketo_calls == 0


def test_watermarks_are_stored_per_entity(env, cycles):
    # customer and supplier watermarks, and when reference data was last synced
    assert sorted(env.state().watermarks.entries("default")) == ["customer", "reference", "supplier"]


def test_sample_sqs_event_and_its_redelivery(env, cycles):
    """events/sqs_batch.json through the writer; delivering it again writes nothing new."""
    event = json.loads((ROOT / "events" / "sqs_batch.json").read_text())
    before = env.marketo.stats.snapshot()
    first = invoke(env.stack, "WriterFunction", event, env=env.env())
    again = invoke(env.stack, "WriterFunction", event, env=env.env())
    after = env.marketo.stats.snapshot()
    assert first == {"batchItemFailures": []} and again == {"batchItemFailures": []}
    assert after["records_created"] - before["records_created"] == 2
    assert after["sync_calls"] - before["sync_calls"] == 1
    keys = {json.loads(r["body"])["key"] for r in event["Records"]}
    stored = {c["externalCompanyId"] for c in env.marketo.store.companies()}
    assert keys <= stored


def test_malformed_message_is_quarantined_without_blocking_the_batch(env, cycles):
    event = json.loads((ROOT / "events" / "sqs_batch.json").read_text())
    good = event["Records"][0]
    body = json.loads(good["body"])
    body["fields"]["company"] = "Renamed by test AS"
    body["visma_timestamp"] = "AAAAAAB3kXp="
    bad = {**good, "messageId": "bad-1", "body": "{not json"}
    changed = {**good, "messageId": "good-2", "body": json.dumps(body)}
    result = invoke(env.stack, "WriterFunction", {"Records": [bad, changed]}, env=env.env())
    assert result == {"batchItemFailures": []}
    names = {c["externalCompanyId"]: c["company"] for c in env.marketo.store.companies()}
    assert names[body["key"]] == "Renamed by test AS"
    entries = {e.key: e for e in env.state().quarantine.entries("_unknown")}
    assert "malformed SQS message" in entries["message#bad-1"].reason


def _emf_documents(env):
    docs = []
    for line in env._log_path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{") and '"_aws"' in line:
            docs.append(json.loads(line))
    return docs


def _metric_values(docs, name, dims):
    values = []
    for doc in docs:
        for directive in doc["_aws"]["CloudWatchMetrics"]:
            names = {m["Name"] for m in directive["Metrics"]}
            if name in names and any(set(d) == set(dims) for d in directive["Dimensions"]):
                value = doc[name]
                values.extend(value if isinstance(value, list) else [value])
    return values


def test_metrics_are_emitted_as_emf_per_service_with_their_detail_as_properties(env, cycles):
    """Metrics carry only the service dimension (per-connection dimensions are billed per connection), their
    connection and entity as properties for Logs Insights; lag and failed polls are also kept by connection."""
    docs = _emf_documents(env)
    assert docs, "no EMF output captured"
    assert all(d["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MlConnector" for d in docs)
    polled = _metric_values(docs, "RecordsPolled", {"service"})
    # The full load read every record and the second cycle the edits; overlap re-reads add to that.
    assert sum(polled) >= CUSTOMERS + SUPPLIERS + EDITS
    assert {d.get("entity") for d in docs if "RecordsPolled" in d} == {"customer", "supplier"}
    assert not _metric_values(docs, "RecordsPolled", {"service", "connection", "entity"})
    written = _metric_values(docs, "RecordsWritten", {"service"})
    assert sum(written) >= CUSTOMERS + SUPPLIERS + EDITS
    lag = _metric_values(docs, "SyncLagSeconds", {"service", "connection", "entity"})
    assert lag and all(v >= 0 for v in lag)
    assert sorted(lag) == sorted(_metric_values(docs, "SyncLagSeconds", {"service"}))


def test_writer_and_client_metrics_in_emf(env, cycles):
    docs = _emf_documents(env)
    sync_calls = _metric_values(docs, "MarketoSyncCalls", {"service"})
    assert sum(sync_calls) >= cycles["first"].marketo_calls + cycles["second"].marketo_calls
    assert _metric_values(docs, "TokenRefreshes", {"service"}), "no token refresh metric"
    assert sum(_metric_values(docs, "RecordsEnqueued", {"service"})) >= CUSTOMERS + SUPPLIERS
