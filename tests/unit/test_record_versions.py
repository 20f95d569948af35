"""The record-version guard as each store keeps it: the in-memory twin, the DynamoDB store through the resource's
client and through the plain (typed) client the deployed writer uses. A version never replaces a newer one,
a write that replaced another version's write recorded after its Marketo call started is reported raced, and
what is recorded reads back the same in every store."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sync_fakes import NOW

from localrun.aws import LocalAws
from ml_connector.state import RecordState, WrittenRecord, utc_iso
from ml_connector.state.dynamodb.table import StateTable, typed_client
from ml_connector.state.dynamodb.versions import DynamoRecordVersions
from ml_connector.state.memory import memory_state
from ml_connector.state.ports import RecordVersions

STORES = ("memory", "dynamodb", "dynamodb-typed")


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAws]:
    with LocalAws() as local:
        yield local


@pytest.fixture(params=STORES)
def versions(request: pytest.FixtureRequest, aws: LocalAws) -> RecordVersions:
    if request.param == "memory":
        return memory_state().records
    name = f"versions-{request.node.name.replace('[', '-').rstrip(']')}"
    aws.client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                              {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    session = aws.session()
    resource = session.resource("dynamodb", endpoint_url=aws.endpoint_url)
    typed = None
    if request.param == "dynamodb-typed":
        typed = typed_client(session, aws.endpoint_url)
    return DynamoRecordVersions(StateTable(name, resource, typed))


def written(internal_id: int, version: str, *, started: datetime | None = None, writer: str = "w1",
            key: str | None = "k@example.com", marketo_id: str | None = "17") -> WrittenRecord:
    return WrittenRecord(entity="customer", internal_id=internal_id, modified_at=NOW, visma_ts=f"ts-{version}",
                         version=version, content_hash=f"hash-{version}", key=key, marketo_id=marketo_id,
                         call_started=started or datetime.now(UTC) - timedelta(seconds=5), writer=writer)


def test_a_newer_version_replaces_an_older_one_and_reads_back(versions: RecordVersions):
    first = versions.mark_written("c1", [written(1, "v1")])
    # v2's call starts a second after v1 was recorded (well beyond the clock slack): the calls did not overlap.
    later = versions.mark_written("c1", [written(1, "v2", started=datetime.now(UTC) + timedelta(seconds=1),
                                                 writer="w2")])
    assert [(o.recorded, o.raced) for o in first + later] == [(True, False), (True, False)]
    assert versions.get("c1", "customer", [1]) == {1: RecordState(
        internal_id=1, written_modified_at=utc_iso(NOW), written_version="v2", written_ts="ts-v2",
        written_hash="hash-v2", written_key="k@example.com", marketo_id="17")}


def test_an_older_version_never_replaces_a_newer_one(versions: RecordVersions):
    versions.mark_written("c1", [written(2, "v5")])
    outcome = versions.mark_written("c1", [written(2, "v3", writer="w2")])
    assert [(o.recorded, o.raced) for o in outcome] == [(False, True)]
    assert versions.get("c1", "customer", [2])[2].written_version == "v5"


def test_a_write_replacing_one_recorded_after_its_call_started_is_raced(versions: RecordVersions):
    started = datetime.now(UTC) - timedelta(seconds=1)
    versions.mark_written("c1", [written(3, "v1", writer="w1")])  # recorded after w2's call started
    outcome = versions.mark_written("c1", [written(3, "v2", started=started, writer="w2")])
    assert [(o.recorded, o.raced) for o in outcome] == [(True, True)]


def test_the_same_version_again_is_neither_refused_nor_raced(versions: RecordVersions):
    versions.mark_written("c1", [written(4, "v1")])
    outcome = versions.mark_written("c1", [written(4, "v1", writer="w2")])
    assert [(o.recorded, o.raced) for o in outcome] == [(True, False)]


def test_a_batch_keeps_each_records_outcome_in_order_and_stores_missing_values(versions: RecordVersions):
    versions.mark_written("c1", [written(11, "v9")])
    batch = [written(10, "v1", key=None, marketo_id=None), written(11, "v2"), written(12, "v1")]
    outcome = versions.mark_written("c1", batch)
    assert [(o.recorded, o.raced) for o in outcome] == [(True, False), (False, True), (True, False)]
    states = versions.get("c1", "customer", [10, 11, 12])
    assert (states[10].written_key, states[10].marketo_id, states[10].written_version) == (None, None, "v1")
    assert states[11].written_version == "v9"


def test_the_typed_client_stores_the_same_item_as_the_resource(aws: LocalAws):
    """Same attributes, types and sizes: the same write units per record."""
    session = aws.session()
    resource = session.resource("dynamodb", endpoint_url=aws.endpoint_url)
    typed = typed_client(session, aws.endpoint_url)
    items = []
    for name, client in (("same-item-resource", None), ("same-item-typed", typed)):
        aws.client("dynamodb").create_table(
            TableName=name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                  {"AttributeName": "sk", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
        DynamoRecordVersions(StateTable(name, resource, client)).mark_written(
            "c1", [written(1, "v1"), written(2, "v1", key=None, marketo_id=None)])
        scanned = aws.client("dynamodb").scan(TableName=name)["Items"]
        items.append(sorted(({k: v for k, v in i.items() if k != "writtenAt"} for i in scanned),
                            key=lambda i: i["sk"]["S"]))
    assert items[0] == items[1] and len(items[0]) == 2
